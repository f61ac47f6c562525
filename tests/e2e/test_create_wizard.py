"""The create wizard in a real browser: create a VM on lab host 1 from the installer ISO, watch the job
page's progress bar and live log move while a real worker installs it, then open the new VM.

The worker starts only once the job page is open, so every step arrives live on the page.
"""

import time

import pytest
from playwright.sync_api import expect

from apps.accounts.services import grant_role
from apps.vms.models import VirtualMachine
from tests.conftest import ARTIFACTS, make_user
from tests.support.browser import log_in
from tests.support.lab import GUEST_PREFIX, serial_log, wait_for
from tests.support.worker import start_worker, stop_worker

pytestmark = [pytest.mark.browser, pytest.mark.lab]

# Every value the progress bar and the log's length take, in order (the summary is re-rendered when
# the job starts and ends, so the whole page is watched).
WATCH_THE_JOB = """() => {
  window.__bar = []; window.__logLengths = [];
  const note = () => {
    const bar = document.getElementById("job-progress");
    const value = bar && bar.getAttribute("aria-valuenow");
    if (value !== null && window.__bar[window.__bar.length - 1] !== Number(value)) window.__bar.push(Number(value));
    const lines = document.querySelectorAll("#job-log li").length;
    if (window.__logLengths[window.__logLengths.length - 1] !== lines) window.__logLengths.push(lines);
  };
  note();
  const page = document.getElementById("job-page");
  new MutationObserver(note).observe(page, { subtree: true, childList: true, attributes: true });
}"""


def test_a_vm_is_created_with_the_wizard_installed_live_and_opened(browser, panel, lab, lab_host, operator):
    page = browser.page
    user = make_user("creator")  # not a superuser: an Operator on lab host 1 (vm.create there)
    grant_role(actor=operator, role="Operator", scope=lab_host.scope, user=user)
    name = f"{GUEST_PREFIX}wizard-{int(time.time())}"
    serial_log(1, name).unlink(missing_ok=True)
    log_in(page, panel, user.username)

    page.locator("#create-vm-link").click()
    expect(page).to_have_url(f"{panel.url}/vms/create/")
    page.fill("#id_name", name)
    page.select_option("#id_os_variant", "linux")
    page.select_option("#id_virt_type", "qemu")  # the tiny guest's kernel wants TCG (LAB.md §2)
    page.fill("#id_vcpus", "1")
    page.fill("#id_max_vcpus", "2")
    page.fill("#id_memory_mib", "256")
    page.fill("#id_max_memory_mib", "256")
    page.select_option("#id_disk_pool", "default")
    page.fill("#id_disk_size", "64")
    page.select_option("#id_disk_unit", "MiB")
    page.select_option("#id_iso", "iso/labos-install.iso")
    page.check("#id_install")
    page.select_option("#id_network", "lab-iso")
    page.locator("#create-review-button").click()

    commands = page.locator("#create-commands")
    expect(commands).to_contain_text(f"virsh vol-create-as default {name}.qcow2 67108864b --format qcow2")
    expect(commands).to_contain_text(f"virt-install --virt-type qemu --name {name} --os-variant linux2022")
    expect(commands).to_contain_text("--cdrom /")
    page.screenshot(path=str(ARTIFACTS / "create-wizard-review.png"), full_page=True)
    page.locator("#create-submit").click()

    page.wait_for_url(f"{panel.url}/jobs/*/")
    expect(page.locator("h1")).to_contain_text("Create VM")
    expect(page.locator("#job-status")).to_have_text("queued")
    page.wait_for_function("window.kvmpanelJobs && window.kvmpanelJobs.jobConnected", timeout=5000)
    page.evaluate(WATCH_THE_JOB)
    page.evaluate("window.__notReloaded = true")

    worker = start_worker("create-wizard-worker")
    try:
        expect(page.locator("#job-phase")).to_have_text("installing", timeout=60000)
        expect(page.locator("#job-log")).to_contain_text("Installing: waiting up to")
        expect(page.locator("#job-status")).to_have_text("succeeded", timeout=120000)
        expect(page.locator("#job-log")).to_contain_text(f"virsh change-media {name} sda --eject --config")
        expect(page.locator("#job-log")).to_contain_text("Booted from disk with the installer media ejected")
        assert page.evaluate("window.__notReloaded") is True  # all of it arrived live
        bar = page.evaluate("window.__bar")
        assert bar[-1] == 100 and bar == sorted(bar), bar  # it only moved forward...
        assert len([value for value in bar if 0 < value < 100]) >= 3, bar  # ...through the phases
        log_lengths = page.evaluate("window.__logLengths")
        assert len(log_lengths) >= 4 and log_lengths == sorted(log_lengths), log_lengths  # lines kept coming
        page.screenshot(path=str(ARTIFACTS / "create-wizard-job.png"), full_page=True)

        link = page.locator("#job-result-link")
        expect(link).to_have_text(f"Open VM {name}")
        link.click()
        vm = VirtualMachine.objects.get(host=lab_host, name=name)
        expect(page).to_have_url(f"{panel.url}/vms/{vm.pk}/")
        expect(page.locator("h1")).to_contain_text(name)
        expect(page.locator('.page-head [data-field="state_label"]')).to_have_text("running")
        wait_for(
            lambda: b"INSTALLED SYSTEM (booted from disk)" in serial_log(1, name).read_bytes(),
            60,
            "the installed system's banner",
        )
        page.screenshot(path=str(ARTIFACTS / "create-wizard-vm.png"), full_page=True)
        browser.assert_clean()
    finally:
        stop_worker(worker)
