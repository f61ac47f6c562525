"""The VM page's "CPU and memory" card in a real browser, against a running guest on lab host 1:
hot-plug a vCPU (the guest onlines it), balloon the memory, read dommemstat, and see a refusal in place."""

import pytest
from playwright.sync_api import expect

from apps.vms import services as vm_services
from tests.conftest import ARTIFACTS
from tests.support.browser import log_in
from tests.support.guest_shell import run_in_guest
from tests.support.lab import boots_seen, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.lab, pytest.mark.django_db(transaction=True)]


def test_cpu_and_memory_from_the_vm_page(browser, panel, lab_host, make_guest, operator):
    page = browser.page
    vm = vm_services.run_lifecycle(make_guest("ui-cpu"), "start", actor=operator)
    wait_for(lambda: boots_seen(1, vm.name) >= 1, 90, "the guest to boot")
    log_in(page, panel, operator.username)
    page.goto(f"{panel.url}/vms/{vm.pk}/")

    card = page.locator("#vm-compute")
    expect(card).to_contain_text(f"virsh setvcpus {vm.name} N --live --config")
    vcpus = card.locator("form.compute-set-vcpus")
    vcpus.locator("input[name=value]").fill("2")
    vcpus.locator("input[name=config]").uncheck()
    vcpus.locator("button[type=submit]").click()
    expect(page.locator("#messages")).to_contain_text(f"virsh setvcpus {vm.name} 2 --live")
    expect(page.locator("#compute-vcpus")).to_contain_text("2 online of 2")
    wait_for(
        lambda: run_in_guest(vm, "cat /sys/devices/system/cpu/online").strip().endswith("0-1"),
        30,
        "the guest to online its second vCPU",
        interval=1,
    )

    memory = page.locator("#vm-compute form.compute-set-memory")
    memory.locator("input[name=value]").fill("160")
    memory.locator("input[name=config]").uncheck()
    memory.locator("button[type=submit]").click()
    expect(page.locator("#messages")).to_contain_text(f"virsh setmem {vm.name} 160M --live")
    expect(page.locator("#memory-stats")).to_contain_text(f"virsh dommemstat {vm.name}")
    expect(page.locator('#memory-stats td[data-stat="actual"]')).to_have_text("163840 KiB", timeout=30000)

    # The browser's own max= would stop 999 before it is sent: the server's refusal is what is shown.
    memory = page.locator("#vm-compute form.compute-set-memory")
    memory.locator("input[name=value]").evaluate("input => input.removeAttribute('max')")
    memory.locator("input[name=value]").fill("999")
    memory.locator("button[type=submit]").click()
    expect(page.locator("#messages")).to_contain_text("beyond the maximum memory of 256 MiB")
    page.screenshot(path=str(ARTIFACTS / "vm-cpu-and-memory.png"), full_page=True)
    browser.assert_clean()
