"""Jobs in a real browser: a real volume.create job on lab host 1, run by a real Celery worker, followed
live on its page (status, progress, log) and in the task panel, with no reload; and cancel from the page.

The worker is started only once the job page is open, so the test sees every step arrive live
(queued → running → succeeded) rather than a job that was over before the page loaded.
"""

import os
import re
import uuid

import pytest
from playwright.sync_api import expect

from apps.accounts.services import grant_role
from apps.jobs import services
from apps.jobs.models import Job
from apps.storage.sync import sync_pools
from apps.vms import services as vm_services
from apps.vms.models import VirtualMachine
from kvmpanel.virt import xml as domain_xml
from tests.conftest import ARTIFACTS, make_user
from tests.support.browser import log_in
from tests.support.lab import GUEST_PREFIX
from tests.support.worker import start_worker, stop_worker

pytestmark = [pytest.mark.browser, pytest.mark.lab]


def storage_admin(lab_host, operator, username: str):
    """Not a superuser: an Administrator on lab host 1 only (storage.manage there)."""
    user = make_user(username)
    grant_role(actor=operator, role="Administrator", scope=lab_host.scope, user=user)
    return user


# Every value the job page's progress bar takes, in order (the summary is re-rendered on start and end,
# so the whole page is watched rather than one element).
WATCH_THE_BAR = """() => {
  window.__bar = [];
  const note = () => {
    const bar = document.getElementById("job-progress");
    const value = bar && bar.getAttribute("aria-valuenow");
    if (value !== null && window.__bar[window.__bar.length - 1] !== Number(value)) window.__bar.push(Number(value));
  };
  note();
  const page = document.getElementById("job-page");
  new MutationObserver(note).observe(page, { subtree: true, childList: true, attributes: true });
}"""


def volume_job(user, lab_host, name: str):
    params = {"pool": "default", "name": name, "format": "qcow2", "capacity_bytes": 8 << 20}
    return services.enqueue_job("volume.create", actor=user, host=lab_host, params=params)


def test_a_job_is_followed_live_on_its_page_and_in_the_task_panel(browser, panel, lab, lab_host, operator):
    page = browser.page
    user = storage_admin(lab_host, operator, "tasker")
    name = f"t-ui-{os.getpid()}.qcow2"
    lab.virsh(1, "vol-delete", "--pool", "default", name, check=False)
    log_in(page, panel, user.username)
    task_panel = page.locator("#task-panel")
    expect(task_panel).to_be_visible()
    page.wait_for_function("window.kvmpanelJobs && window.kvmpanelJobs.connected", timeout=5000)
    page.evaluate("window.__notReloaded = true")

    # Started elsewhere (another tab, the API): the panel shows it without a reload.
    job = volume_job(user, lab_host, name)
    row = task_panel.locator(f'tr[data-job-id="{job.pk}"]')
    expect(row).to_contain_text("Create volume", timeout=5000)
    expect(row.locator('[data-field="status"]')).to_have_text("queued")
    assert page.evaluate("window.__notReloaded") is True

    row.locator("td").nth(1).click()  # anywhere on the row opens the job
    expect(page).to_have_url(f"{panel.url}/jobs/{job.pk}/")
    expect(page.locator("#job-status")).to_have_text("queued")
    expect(page.locator("#job-log li")).to_have_count(0)
    expect(page.locator("#job-cancel")).to_be_visible()
    page.wait_for_function("window.kvmpanelJobs.connected && window.kvmpanelJobs.jobConnected", timeout=5000)
    page.evaluate("window.__notReloaded = true")

    worker = start_worker("jobs-ui-worker")
    try:
        expect(page.locator("#job-status")).to_have_text("succeeded", timeout=60000)
        expect(page.locator("#job-progress")).to_have_attribute("aria-valuenow", "100")
        expect(page.locator("#job-progress")).to_have_js_property("value", 100)
        expect(page.locator("#job-log")).to_contain_text(f"Creating qcow2 volume {name}")
        expect(page.locator("#job-log")).to_contain_text("Created /")
        expect(page.locator("#job-cancel")).to_have_count(0)  # nothing left to cancel
        panel_row = page.locator(f'#task-panel tr[data-job-id="{job.pk}"]')
        expect(panel_row.locator('[data-field="status"]')).to_have_text("succeeded")
        expect(panel_row.locator('[data-field="percent"]')).to_have_text("100%")
        assert page.evaluate("window.__notReloaded") is True  # all of it arrived live
        # Every line once: the pushes and the log API's catch-up read did not double any.
        lines = list(Job.objects.get(pk=job.pk).log_lines.values_list("pk", flat=True))
        shown = page.locator("#job-log li").evaluate_all("items => items.map(item => Number(item.dataset.lineId))")
        assert shown == lines
        assert "8388608 bytes" in lab.virsh(1, "vol-info", "--pool", "default", name, "--bytes").stdout
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "job-succeeded.png"), full_page=True)

        # The list page shows it too, linked to the host.
        page.goto(f"{panel.url}/jobs/")
        listed = page.locator(f'#job-table tr[data-job-id="{job.pk}"]')
        expect(listed.locator('[data-field="status"]')).to_have_text("succeeded")
        expect(listed.locator(f'a[href="/hosts/{lab_host.pk}/"]')).to_have_text(lab_host.name)
        page.screenshot(path=str(ARTIFACTS / "jobs-list.png"), full_page=True)
        browser.assert_clean()
    finally:
        stop_worker(worker)
        lab.virsh(1, "vol-delete", "--pool", "default", name, check=False)


def test_a_queued_job_is_cancelled_from_its_page_and_the_panel_remembers_being_folded(
    browser, panel, lab, lab_host, operator
):
    page = browser.page
    user = storage_admin(lab_host, operator, "canceller")
    job = volume_job(user, lab_host, f"t-ui-cancel-{os.getpid()}.qcow2")  # no worker: it stays queued
    log_in(page, panel, user.username)
    page.goto(f"{panel.url}/jobs/{job.pk}/")
    page.wait_for_function("window.kvmpanelJobs.jobConnected", timeout=5000)
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#job-cancel").click()
    expect(page.locator("#job-status")).to_have_text("cancelled", timeout=5000)
    expect(page.locator("#messages")).to_contain_text("cancelled before it started")
    expect(page.locator("#job-log")).to_contain_text("Cancelled before it started")
    expect(page.locator("#job-cancel")).to_have_count(0)
    expect(page.locator(f'#task-panel tr[data-job-id="{job.pk}"] [data-field="status"]')).to_have_text("cancelled")
    assert Job.objects.get(pk=job.pk).status == "cancelled"

    # Folded on one page, folded on the next.
    body = page.locator("#task-panel-body")
    expect(body).to_be_visible()
    page.locator("#task-panel-toggle").click()
    expect(body).to_be_hidden()
    page.goto(f"{panel.url}/vms/")
    expect(page.locator("#task-panel-toggle")).to_have_attribute("aria-expanded", "false")
    expect(page.locator("#task-panel-body")).to_be_hidden()
    page.locator("#task-panel-toggle").click()
    expect(page.locator("#task-panel-body")).to_be_visible()
    browser.assert_clean()


def test_a_clone_shows_its_bytes_and_ends_with_a_link_to_the_new_vm(
    browser, panel, lab, lab_host, operator, data_volume
):
    page = browser.page
    user = storage_admin(lab_host, operator, "cloner")
    name = f"{GUEST_PREFIX}src-{uuid.uuid4().hex[:6]}"
    disk = data_volume(capacity_bytes=64 << 20, data_bytes=24 << 20)
    spec = vm_services.tiny_guest_spec(name, disk_path=disk, iso_path="")  # no CD-ROM: only its own disk
    source = vm_services.define_vm(lab_host, domain_xml.build_domain_xml(spec), actor=operator)
    sync_pools(lab_host)  # the clone's target pool is checked against the storage inventory
    job = services.enqueue_job("vm.clone", actor=user, vm=source, params={})
    log_in(page, panel, user.username)
    page.goto(f"{panel.url}/jobs/{job.pk}/")
    expect(page.locator("h1")).to_contain_text(f"Clone VM · {name}")
    page.wait_for_function("window.kvmpanelJobs.jobConnected", timeout=5000)
    page.evaluate(WATCH_THE_BAR)
    page.evaluate("window.__notReloaded = true")

    worker = start_worker("jobs-ui-worker")
    try:
        expect(page.locator("#job-status")).to_have_text("succeeded", timeout=60000)
        link = page.locator("#job-result-link")
        expect(link).to_have_text(f"Open VM {name}-clone")
        assert page.evaluate("window.__notReloaded") is True
        bar = page.evaluate("window.__bar")
        assert bar[0] == 0 and bar[-1] == 100 and bar == sorted(bar), bar  # it only moved forward
        assert any(0 < value < 100 for value in bar), bar
        expect(page.locator("#job-bytes")).to_have_text(re.compile(r"^(\d+\.\d MiB) of \1$"))
        expect(page.locator("#job-rate")).to_have_text(re.compile(r" MiB/s$"))  # the average, once done
        expect(page.locator("#job-eta")).to_have_text("")
        page.screenshot(path=str(ARTIFACTS / "job-clone-succeeded.png"), full_page=True)
        clone = VirtualMachine.objects.get(name=f"{name}-clone")
        link.click()
        expect(page).to_have_url(f"{panel.url}/vms/{clone.pk}/")
        expect(page.locator("h1")).to_contain_text(clone.name)
        browser.assert_clean()
    finally:
        stop_worker(worker)
