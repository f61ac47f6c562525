"""The noVNC console page in a real browser (Playwright + Debian's Chromium) against a lab guest.

The page runs under a strict CSP, so every test also watches the browser console: a CSP violation
(or an uncaught exception) anywhere on the page fails the test.
"""

import time

import pytest
from playwright.sync_api import Page, expect

from apps.accounts.models import Role
from apps.accounts.services import grant_role
from apps.vms import services as vm_services
from tests.conftest import ARTIFACTS, make_user
from tests.support.browser import log_in
from tests.support.lab import boots_seen, serial_log, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.lab, pytest.mark.usefixtures("console_proxy")]
# True once the noVNC canvas shows something other than black (the first framebuffer update drawn).
CANVAS_HAS_PIXELS = """() => {
  const canvas = document.querySelector('#screen canvas');
  if (!canvas || !canvas.width || !canvas.height) return false;
  const d = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  for (let i = 0; i < d.length; i += 4) if (d[i] > 96 || d[i + 1] > 96 || d[i + 2] > 96) return true;
  return false;
}"""


def booted_guest(make_guest, operator, prefix: str):
    vm = vm_services.run_lifecycle(make_guest(prefix), "start", actor=operator)
    wait_for(lambda: boots_seen(1, vm.name) >= 1, 30, f"{vm.name} to boot", interval=0.5)
    return vm


def open_console(page: Page, panel, vm) -> None:
    page.goto(f"{panel.url}/vms/{vm.pk}/console/")
    expect(page.locator("#console-state")).to_have_attribute("data-state", "connected", timeout=15000)
    page.wait_for_function(CANVAS_HAS_PIXELS, timeout=15000)


# Shifted characters on a US keyboard and the key that makes them. QEMU takes the scancode from the
# key event, not the character, so a "$" must arrive as Shift + Digit4, the way a real keyboard sends it
# (Playwright's keyboard.type sends the character's key without Shift).
US_SHIFTED = {symbol: f"Digit{digit}" for digit, symbol in enumerate(")!@#$%^&*(")} | {
    "~": "Backquote", "_": "Minus", "+": "Equal", "{": "BracketLeft", "}": "BracketRight", "|": "Backslash",
    ":": "Semicolon", '"': "Quote", "<": "Comma", ">": "Period", "?": "Slash",
}  # fmt: skip


def type_keys(page: Page, text: str, delay: int = 30) -> None:
    """Type like a person on a US keyboard: Shift held for capitals and shifted symbols."""
    for ch in text:
        if ch in US_SHIFTED:
            page.keyboard.press(f"Shift+{US_SHIFTED[ch]}")
        elif "A" <= ch <= "Z":
            page.keyboard.press(f"Shift+Key{ch}")
        else:
            page.keyboard.press(ch)
        page.wait_for_timeout(delay)


def serial_text(vm) -> bytes:
    path = serial_log(1, vm.name)
    return path.read_bytes() if path.exists() else b""


def test_an_operator_opens_the_console_sees_the_banner_and_types_into_the_guest(
    browser, panel, lab, make_guest, operator
):
    page = browser.page
    vm = booted_guest(make_guest, operator, "vnc")
    user = make_user("vera", is_superuser=True)
    log_in(page, panel, user.username)

    # The VM's page links to both consoles, each in a new tab.
    page.goto(f"{panel.url}/vms/{vm.pk}/")
    link = page.locator(f'a[href="/vms/{vm.pk}/console/"]')
    expect(link).to_have_text("Console")
    expect(link).to_have_attribute("target", "_blank")
    expect(page.locator(f'a[href="/vms/{vm.pk}/serial/"]')).to_have_attribute("rel", "noopener")

    started = time.monotonic()
    open_console(page, panel, vm)
    connected_after = time.monotonic() - started
    expect(page.locator("#console-state")).to_have_text("connected")
    expect(page.locator("#console-view-only")).to_be_hidden()
    expect(page.locator("#console-cad")).to_be_enabled()
    expect(page.locator("#console-overlay")).to_be_hidden()
    # The screen fills the window's width, below the toolbar.
    box = page.locator("#console-screen").bounding_box()
    assert box["width"] >= 1270 and box["height"] > 500, box
    page.screenshot(path=str(ARTIFACTS / "console-banner.png"))
    assert connected_after < 15

    page.locator("#screen canvas").click()
    type_keys(page, "echo typed-through-novnc-$((6*7)) > /dev/ttyS0")
    page.keyboard.press("Enter")
    wait_for(lambda: b"typed-through-novnc-42" in serial_text(vm), 15, "the typed command's output on ttyS0")
    page.screenshot(path=str(ARTIFACTS / "console-typed.png"))

    # The toolbar's own typing (for guests without a clipboard agent) reaches the guest too.
    page.click("#console-clipboard-toggle")
    page.fill("#console-clipboard-text", "echo toolbar-typed-$((2+3)) > /dev/ttyS0\n")
    page.click("#console-clipboard-type")
    wait_for(lambda: b"toolbar-typed-5" in serial_text(vm), 15, "the toolbar-typed command's output on ttyS0")
    page.click("#console-keys-toggle")
    expect(page.locator("#console-keys")).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "console-toolbar-open.png"))
    page.click('#console-keys [data-combo="escape"]')
    expect(page.locator("#console-keys")).to_be_hidden()

    # The screenshot button downloads the screen as <vm>-screen.png.
    with page.expect_download() as download:
        page.click("#console-screenshot")
    assert download.value.suggested_filename == f"{vm.name}-screen.png"
    saved = ARTIFACTS / "console-download.png"
    download.value.save_as(saved)
    assert saved.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    browser.assert_clean()


def test_a_view_only_user_sees_the_screen_but_cannot_type(browser, panel, lab, make_guest, operator):
    page = browser.page
    vm = booted_guest(make_guest, operator, "vnc-ro")
    role = Role.objects.create(name="Console watcher", privileges=["vm.view", "vm.console.view"])
    user = make_user("wanda")
    grant_role(actor=operator, role=role, scope=vm.scope, user=user)
    log_in(page, panel, user.username)

    page.goto(f"{panel.url}/vms/{vm.pk}/")
    expect(page.locator(f'a[href="/vms/{vm.pk}/console/"]')).to_be_visible()
    expect(page.locator(f'a[href="/vms/{vm.pk}/serial/"]')).to_have_count(0)  # serial takes input

    open_console(page, panel, vm)
    expect(page.locator("#console-view-only")).to_be_visible()
    expect(page.locator("#console-view-only")).to_have_text("view only")
    for control in ("#console-cad", "#console-keys-toggle", "#console-clipboard-send", "#console-clipboard-type"):
        expect(page.locator(control)).to_be_disabled()
    page.screenshot(path=str(ARTIFACTS / "console-view-only.png"))

    page.locator("#screen canvas").click()
    type_keys(page, "echo viewonly-leak > /dev/ttyS0")
    page.keyboard.press("Enter")
    # A modified client that sends input anyway: the proxy drops it (the server-side filter).
    page.evaluate("window.kvmpanelConsole.rfb.viewOnly = false")
    page.locator("#screen canvas").click()
    type_keys(page, "echo viewonly-forced > /dev/ttyS0")
    page.keyboard.press("Enter")
    page.wait_for_timeout(3000)
    assert b"viewonly-leak" not in serial_text(vm)
    assert b"viewonly-forced" not in serial_text(vm)
    browser.assert_clean()


def test_the_console_follows_the_vm_state(browser, panel, lab, make_guest, operator):
    page = browser.page
    vm = booted_guest(make_guest, operator, "vnc-off")
    make_user("stella", is_superuser=True)
    log_in(page, panel, "stella")
    open_console(page, panel, vm)

    lab.virsh(1, "destroy", vm.name)
    state = page.locator("#console-state")
    expect(page.locator("#console-notice")).to_have_text("The VM is shut off.", timeout=5000)
    expect(page.locator("#console-start")).to_be_visible()
    expect(state).to_have_attribute("data-state", "off")
    expect(state).to_have_text("shut off")
    page.screenshot(path=str(ARTIFACTS / "console-shut-off.png"))

    started = time.monotonic()
    page.click("#console-start")
    expect(state).to_have_attribute("data-state", "connected", timeout=20000)
    expect(page.locator("#console-overlay")).to_be_hidden()
    page.wait_for_function(CANVAS_HAS_PIXELS, timeout=20000)
    assert time.monotonic() - started < 20
    page.screenshot(path=str(ARTIFACTS / "console-restarted.png"))
    browser.assert_clean()


def test_the_console_page_sends_a_strict_csp(browser, panel, make_guest, operator):
    page = browser.page
    vm = make_guest("csp")  # shut off: the page still loads everything and says so
    make_user("cyril", is_superuser=True)
    log_in(page, panel, "cyril")

    response = page.goto(f"{panel.url}/vms/{vm.pk}/console/")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "style-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert "unsafe-eval" not in csp
    expect(page.locator("#console-notice")).to_have_text("The VM is shut off.")
    expect(page.locator("#console-start")).to_be_visible()
    expect(page.locator("#live-indicator.on")).to_be_visible(timeout=5000)
    browser.assert_clean()

    # The check is not blind: inline code is refused, and the refusal is seen.
    page.evaluate("""() => {
      const script = document.createElement('script');
      script.textContent = 'window.__inline = 1';
      document.body.append(script);
    }""")
    for _ in range(50):
        if browser.csp_violations():
            break
        page.wait_for_timeout(100)  # Playwright delivers console events while it runs
    assert browser.csp_violations(), browser.console
    assert page.evaluate("window.__inline") is None
