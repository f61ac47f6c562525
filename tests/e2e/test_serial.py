"""The serial console page (xterm.js) in a real browser (Playwright + Debian's Chromium) on a lab guest.

The page runs under a strict CSP, so the test also watches the browser console: a CSP violation or
an uncaught exception on the page fails it.
"""

import pytest
from playwright.sync_api import expect

from apps.vms import services as vm_services
from tests.conftest import ARTIFACTS, make_user
from tests.support.browser import log_in
from tests.support.lab import boots_seen, serial_log, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.lab]
TERMINAL_TEXT = "() => document.querySelector('#terminal .xterm-rows').innerText"


def serial_text(vm) -> bytes:
    path = serial_log(1, vm.name)
    return path.read_bytes() if path.exists() else b""


def test_a_user_types_into_the_serial_console_and_sees_the_answer(browser, panel, lab, make_guest, operator):
    page = browser.page
    vm = vm_services.run_lifecycle(make_guest("xterm"), "start", actor=operator)
    wait_for(lambda: boots_seen(1, vm.name) >= 1, 90, f"{vm.name} to boot", interval=0.5)
    user = make_user("sina", is_superuser=True)
    log_in(page, panel, user.username)

    page.goto(f"{panel.url}/vms/{vm.pk}/serial/")
    state = page.locator("#serial-state")
    expect(state).to_have_attribute("data-state", "connected", timeout=15000)
    expect(state).to_have_text("connected")
    expect(page.locator(".serial-note")).to_contain_text(f"virsh console {vm.name}")
    expect(page.locator("#serial-reconnect")).to_be_hidden()
    # The terminal fills the window below the toolbar.
    box = page.locator("#terminal").bounding_box()
    assert box["width"] >= 1270 and box["height"] > 550, box

    page.locator("#terminal").click()
    page.keyboard.type("echo typed-in-xterm-$((6*7))", delay=20)
    page.keyboard.press("Enter")
    page.wait_for_function(f"() => ({TERMINAL_TEXT})().includes('typed-in-xterm-42')", timeout=20000)
    wait_for(lambda: b"typed-in-xterm-42" in serial_text(vm), 10, "the answer in the serial log")
    shot = ARTIFACTS / "serial-console.png"
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000

    # A second page on the same VM is refused clearly; the first keeps its console.
    second = page.context.new_page()
    second.on("console", lambda message: browser.console.append(f"{message.type}: {message.text}"))
    second.goto(f"{panel.url}/vms/{vm.pk}/serial/")
    expect(second.locator("#serial-state")).to_have_attribute("data-state", "closed", timeout=15000)
    expect(second.locator("#serial-reason")).to_have_text("Another session is using this VM's serial console.")
    expect(second.locator("#serial-reconnect")).to_be_visible()
    second.screenshot(path=str(ARTIFACTS / "serial-console-busy.png"))
    second.close()

    # The VM stops: the page says so and offers to reconnect; Reconnect gets a new ticket.
    lab.virsh(1, "destroy", vm.name)
    expect(state).to_have_attribute("data-state", "closed", timeout=10000)
    expect(page.locator("#serial-reason")).to_have_text("The serial console ended (the VM stopped?).")
    page.click("#serial-reconnect")
    expect(page.locator("#serial-reason")).to_contain_text("not running", timeout=10000)
    browser.assert_clean()
