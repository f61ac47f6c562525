"""The VM page's disk and snapshot forms in a real browser, against a running guest on lab host 1,
with jobs run by a real Celery worker: attach a disk (the guest sees it), take a snapshot, revert to
it after confirming, and see the tree mark it current."""

import pytest
from playwright.sync_api import expect

from apps.storage.sync import sync_pools
from apps.vms import services as vm_services
from tests.conftest import ARTIFACTS
from tests.support.browser import log_in
from tests.support.guest_shell import read_marker, run_in_guest, write_marker
from tests.support.lab import boots_seen, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.lab, pytest.mark.django_db(transaction=True)]


def test_disks_and_snapshots_from_the_vm_page(browser, panel, lab_host, make_guest, operator, worker):
    page = browser.page
    sync_pools(lab_host)
    vm = vm_services.run_lifecycle(make_guest("ui"), "start", actor=operator)
    wait_for(lambda: boots_seen(1, vm.name) >= 1, 90, "the guest to boot")
    log_in(page, panel, operator.username)
    page.goto(f"{panel.url}/vms/{vm.pk}/")

    page.click("#disk-attach summary")
    form = page.locator("#disk-attach form")
    form.locator("input[name=name]").fill(f"{vm.name}-ui.qcow2")
    form.locator("input[name=size]").fill("16")
    form.locator("select[name=unit]").select_option(label="MiB")
    form.locator("button[type=submit]").click()
    expect(page.locator("#messages")).to_contain_text("virsh attach-disk")
    expect(page.locator('#disk-table tr[data-target="vdb"]')).to_contain_text(f"{vm.name}-ui.qcow2")
    assert "vdb" in run_in_guest(vm, "ls /sys/block")

    marker = write_marker(vm)
    page.fill("#snapshot-create input[name=name]", "ui-snap")
    page.fill("#snapshot-create input[name=description]", "from the browser")
    page.click("#snapshot-create button[type=submit]")
    expect(page.locator("#job-status")).to_have_text("succeeded", timeout=60000)

    write_marker(vm)
    page.goto(f"{panel.url}/vms/{vm.pk}/")
    row = page.locator('#snapshot-table tr[data-snapshot="ui-snap"]')
    expect(row).to_contain_text("from the browser")
    expect(row).to_have_class("current")
    page.once("dialog", lambda dialog: dialog.accept())
    row.locator(".snapshot-revert button").click()
    expect(page.locator("#job-status")).to_have_text("succeeded", timeout=60000)
    assert read_marker(vm) == marker

    page.goto(f"{panel.url}/vms/{vm.pk}/")
    expect(page.locator('#snapshot-table tr[data-snapshot="ui-snap"]')).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "vm-disks-and-snapshots.png"), full_page=True)
    browser.assert_clean()
    # The new volume is the guest's vdb now: the fixture deletes it with the guest.
