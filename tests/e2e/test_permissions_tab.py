"""A real browser against the real panel: an admin grants a group a role on a VM's Permissions tab, and
the effective-permissions view explains a member's access through that group."""

import pytest
from django.contrib.auth.models import Group
from playwright.sync_api import expect

from apps.accounts.models import Grant
from tests.conftest import ARTIFACTS
from tests.support.browser import log_in

pytestmark = [pytest.mark.browser]


def test_an_admin_grants_a_group_on_the_vm_tab_and_the_effective_view_explains_it(
    transactional_db, browser, panel, world
):
    page = browser.page
    ops = Group.objects.create(name="ops")
    world.bob.groups.add(ops)
    vm = world.vm
    log_in(page, panel, world.root.username)

    page.goto(f"{panel.url}/vms/{vm.pk}/")
    page.locator("#object-tabs").get_by_role("link", name="Permissions").click()
    expect(page).to_have_url(f"{panel.url}/vms/{vm.pk}/permissions/")
    expect(page.locator("#grants-here")).to_contain_text("alice")
    expect(page.locator('#access-table tr[data-username="bob"]')).to_have_count(0)  # no access yet

    form = page.locator("#permissions-grant")
    form.locator("select[name=role]").select_option(label="Operator")
    form.locator("select[name=group]").select_option(label="ops")
    form.get_by_role("button", name="Grant").click()

    expect(page.locator("#messages")).to_contain_text("Granted")
    expect(page.locator("#grants-here")).to_contain_text("group ops")
    bob = page.locator('#access-table tr[data-username="bob"]')
    expect(bob).to_contain_text(f"Operator on {vm.scope} (via group ops)")
    assert Grant.objects.filter(group=ops, scope=vm.scope, role__name="Operator").exists()
    page.screenshot(path=str(ARTIFACTS / "vm-permissions-tab.png"), full_page=True)

    bob.get_by_role("link", name="Why?").click()
    expect(page.locator("#effective-summary")).to_contain_text(f"bob on {vm.scope}")
    clone = page.locator('#effective-table tr[data-privilege="vm.clone"]')
    expect(clone).to_have_attribute("data-allowed", "yes")
    expect(clone).to_contain_text(f"Allowed by Operator on {vm.scope} (via group ops)")
    expect(page.locator('#effective-table tr[data-privilege="user.manage"]')).to_have_attribute("data-allowed", "no")
    page.screenshot(path=str(ARTIFACTS / "effective-permissions-via-group.png"), full_page=True)
    browser.assert_clean()
