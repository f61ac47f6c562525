"""A real browser (Playwright + Debian's Chromium) against the real panel and a lab guest."""

from pathlib import Path

import pytest
from playwright.sync_api import expect

from apps.vms.models import VirtualMachine
from tests.conftest import ARTIFACTS, make_user
from tests.support.browser import log_in

pytestmark = [pytest.mark.browser, pytest.mark.lab]


def test_an_operator_logs_in_sees_the_vm_presses_start_and_watches_it_run(browser, panel, make_guest, operator):
    page = browser.page
    vm = make_guest("demo")
    user = make_user("opal", is_superuser=True)
    log_in(page, panel, user.username)

    row = page.locator(f'tr[data-vm-id="{vm.pk}"]')
    expect(row).to_contain_text(vm.name)
    expect(row.locator('[data-field="state_label"]')).to_have_text("shut off")
    expect(page.locator("#live-indicator.on")).to_be_visible(timeout=5000)  # the WebSocket is up

    page.evaluate("window.__notReloaded = true")
    row.locator('button[data-action="start"]').click()
    expect(row.locator('[data-field="state_label"]')).to_have_text("running", timeout=15000)
    assert page.evaluate("window.__notReloaded") is True  # the state came live, not from a reload
    expect(row.locator('button[data-action="shutdown"]')).to_be_visible()
    expect(row.locator('button[data-action="start"]')).to_be_hidden()
    expect(page.locator("#messages")).to_contain_text("is now running")
    assert VirtualMachine.objects.get(pk=vm.pk).state == "running"

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "vm-list-running.png"
    page.screenshot(path=str(shot), full_page=True)
    assert Path(shot).stat().st_size > 10_000


def test_a_vm_changed_outside_the_panel_updates_the_open_detail_page(browser, panel, lab, make_guest, operator):
    from apps.vms import services

    page = browser.page
    vm = services.run_lifecycle(make_guest("watch"), "start", actor=operator)
    make_user("viewer2", is_superuser=True)
    log_in(page, panel, "viewer2")
    page.goto(f"{panel.url}/vms/{vm.pk}/")
    state = page.locator('.page-head [data-field="state_label"]')
    expect(state).to_have_text("running")
    expect(page.locator("#live-indicator.on")).to_be_visible(timeout=5000)
    lab.virsh(1, "destroy", vm.name)
    expect(state).to_have_text("shut off", timeout=3000)
    page.screenshot(path=str(ARTIFACTS / "vm-detail-destroyed.png"), full_page=True)


def test_the_panel_speaks_chinese_when_the_user_chooses_it(browser, panel, make_guest):
    page = browser.page
    make_guest("zh")
    make_user("li", is_superuser=True)
    log_in(page, panel, "li")
    page.select_option('select[name="language"]', "zh-hans")
    expect(page.locator("h1")).to_have_text("虚拟机")
    page.screenshot(path=str(ARTIFACTS / "vm-list-zh-hans.png"), full_page=True)
