"""Issue 5's self-service scenario, end to end in real browsers against the lab:

An admin creates a project with a quota of 2 VMs / 2 vCPUs / 1 GiB placed on lab host 1, a group
that must use 2FA with VMUser on the project, and a user in it. The user enrolls an authenticator,
logs in with a code, creates VMs with the wizard until the quota refuses the third with a clear
message, cannot see another project's VM (404), and opens the console of their own VM; the admin
revokes the group's grant and the user's open console closes.
"""

import re
import time

import pytest
from playwright.sync_api import Page, expect

from apps.accounts.models import Project
from apps.vms.models import VirtualMachine
from tests.accounts.two_factor_support import code_for
from tests.conftest import ARTIFACTS, PASSWORD
from tests.support.browser import log_in
from tests.support.lab import GUEST_PREFIX
from tests.support.worker import start_worker, stop_worker

pytestmark = [pytest.mark.browser, pytest.mark.lab, pytest.mark.usefixtures("console_proxy")]

USERNAME = "selfie"


def submit(page: Page, form: str) -> None:
    page.locator(f"{form} button[type=submit]").last.click()


def admin_sets_up_the_team(page: Page, panel, lab_host) -> Project:
    page.goto(f"{panel.url}/account/projects/")
    page.fill("#project-create input[name=name]", "team")
    submit(page, "#project-create")
    expect(page.locator("#project-quota")).to_be_visible()
    project = Project.objects.get(name="team")
    page.fill("#quota-form input[name=max_vms]", "2")
    page.fill("#quota-form input[name=max_vcpus]", "2")
    page.fill("#quota-form input[name=max_memory_mib]", "1024")
    submit(page, "#quota-form")
    expect(page.locator("#project-quota")).to_contain_text("0 / 2")
    page.locator(f"#placement-form input[value='{lab_host.pk}']").check()
    submit(page, "#placement-form")
    expect(page.locator("#project-placement li").first).to_have_text(lab_host.name)

    page.goto(f"{panel.url}/account/users/")
    page.fill("#user-create input[name=username]", USERNAME)
    page.fill("#user-create input[name=password]", PASSWORD)
    submit(page, "#user-create")
    expect(page.locator("#user-table")).to_contain_text(USERNAME)

    page.goto(f"{panel.url}/account/groups/")
    page.fill("#group-create input[name=name]", "team-members")
    page.locator("#group-create label", has_text=USERNAME).locator("input").check()
    submit(page, "#group-create")
    row = page.locator("#group-table tr", has_text="team-members")
    row.get_by_role("button", name="Require 2FA").click()
    expect(page.locator("#group-table tr", has_text="team-members")).to_contain_text("Stop requiring 2FA")

    page.goto(f"{panel.url}/account/projects/{project.pk}/permissions/")
    page.select_option("#permissions-grant select[name=role]", label="VMUser")
    page.select_option("#permissions-grant select[name=group]", label="team-members")
    submit(page, "#permissions-grant")
    expect(page.locator("#access-table")).to_contain_text(USERNAME)
    return project


def user_enrolls_then_logs_in_with_a_code(page: Page, panel) -> None:
    page.goto(f"{panel.url}/login/")
    page.fill("#id_username", USERNAME)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("#two-factor-required")).to_be_visible()  # nowhere else until enrolled
    page.locator("#start-two-factor button").click()
    secret = page.locator("#totp-secret").inner_text().replace(" ", "")
    page.fill("#confirm-two-factor input[name=code]", code_for(secret, steps_ahead=-1))
    submit(page, "#confirm-two-factor")
    expect(page.locator("#recovery-codes")).to_be_visible()

    page.context.clear_cookies()  # a new session: password, then the code
    page.goto(f"{panel.url}/login/")
    page.fill("#id_username", USERNAME)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.fill("#code-step input[name=code]", code_for(secret))
    submit(page, "#code-step")
    expect(page).to_have_url(f"{panel.url}/vms/")
    return secret


def fill_the_wizard(page: Page, panel, name: str) -> None:
    page.goto(f"{panel.url}/vms/create/")
    expect(page.locator("#id_project option")).to_have_count(1)  # only the team's project, and required
    page.fill("#id_name", name)
    page.select_option("#id_os_variant", "linux")
    page.select_option("#id_virt_type", "qemu")
    for field, value in (("vcpus", "1"), ("max_vcpus", "1"), ("memory_mib", "256"), ("max_memory_mib", "256")):
        page.fill(f"#id_{field}", value)
    page.select_option("#id_disk_pool", "default")
    page.fill("#id_disk_size", "32")
    page.select_option("#id_disk_unit", "MiB")
    page.select_option("#id_iso", "iso/labos-live.iso")
    page.locator("#create-review-button").click()
    page.locator("#create-submit").click()


def test_a_self_service_user_works_within_the_project_quota_and_loses_the_console_on_revoke(
    browser, panel, lab, lab_host, operator, make_guest
):
    admin = browser.page
    log_in(admin, panel, operator.username)
    project = admin_sets_up_the_team(admin, panel, lab_host)

    elsewhere = make_guest("elsewhere")  # another project's VM on the same host
    VirtualMachine.objects.filter(pk=elsewhere.pk).update(project=Project.objects.create(name="other"))

    user = admin.context.browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    user_enrolls_then_logs_in_with_a_code(user, panel)

    worker = start_worker("self-service-worker")
    try:
        names = [f"{GUEST_PREFIX}team-{int(time.time())}-{n}" for n in (1, 2, 3)]
        for name in names[:2]:
            fill_the_wizard(user, panel, name)
            expect(user).to_have_url(re.compile(r"/jobs/\d+/$"))
            expect(user.locator("#job-status")).to_have_text(re.compile("succeeded|failed"), timeout=90000)
            assert user.locator("#job-status").inner_text() == "succeeded", user.locator("#job-page").inner_text()
        fill_the_wizard(user, panel, names[2])
        refusal = user.locator("[data-form-error]")
        expect(refusal).to_contain_text("Quota exceeded for project team: VMs 2 of 2 used")
        user.screenshot(path=str(ARTIFACTS / "self-service-quota.png"), full_page=True)
    finally:
        stop_worker(worker)
    assert (
        list(VirtualMachine.objects.filter(project=project).values_list("name", flat=True).order_by("name"))
        == names[:2]
    )

    assert user.goto(f"{panel.url}/vms/{elsewhere.pk}/").status == 404
    mine = VirtualMachine.objects.get(name=names[0])
    user.goto(f"{panel.url}/vms/{mine.pk}/console/")
    state = user.locator("#console-state")
    expect(state).to_have_attribute("data-state", "connected", timeout=20000)

    admin.goto(f"{panel.url}/account/projects/{project.pk}/permissions/")
    admin.locator("tr", has_text="team-members").locator("form button[type=submit]").first.click()
    expect(admin.locator("#access-table")).not_to_contain_text("selfie")
    expect(state).not_to_have_attribute("data-state", "connected", timeout=10000)
    expect(state).to_have_attribute("data-state", "refused", timeout=20000)
    user.screenshot(path=str(ARTIFACTS / "self-service-revoked.png"), full_page=True)
    assert user.goto(f"{panel.url}/vms/{mine.pk}/").status == 404
