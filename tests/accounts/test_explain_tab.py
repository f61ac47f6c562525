"""The Permissions tab of VMs, hosts and projects: grants here and inherited, everyone's effective access,
add and revoke through the audited services — for holders of user.manage on the object only."""

from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse

from apps.accounts.models import Grant, Project, Role
from apps.accounts.services import grant_role
from apps.audit.models import AuditEvent
from tests.conftest import make_user


def session(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def rows_of(html: str, table_id: str) -> str:
    start = html.index(f'id="{table_id}"')
    return html[start : html.index("</table>", start)]


def test_a_manager_sees_the_grants_here_the_inherited_ones_and_everyones_access(world):
    html = session(world.root).get(reverse("vm-permissions", args=[world.vm.pk])).content.decode()
    here, inherited, access = (rows_of(html, t) for t in ("grants-here", "grants-inherited", "access-table"))
    assert "alice" in here and "VMUser" in here and "oscar" not in here
    assert "oscar" in inherited and "Operator" in inherited and "carol" in inherited
    assert 'data-username="alice"' in access and 'data-username="oscar"' in access
    assert 'data-username="bob"' not in access
    assert f"Operator on {world.host.scope} (own grant)" in access
    assert f"inherited from {world.host.scope}" in access
    assert "<code>vm.clone</code>" in access.split('data-username="oscar"')[1].split("</tr>")[0]


def test_the_vm_page_shows_the_tab_only_to_holders_of_user_manage(world):
    assert reverse("vm-permissions", args=[world.vm.pk]) in (
        session(world.root).get(reverse("vms:detail", args=[world.vm.pk])).content.decode()
    )
    alices_vm = session(world.alice).get(reverse("vms:detail", args=[world.vm.pk])).content.decode()
    assert 'id="object-tabs"' not in alices_vm
    carols_host = session(world.carol).get(reverse("hosts:detail", args=[world.host.pk])).content.decode()
    assert 'id="object-tabs"' not in carols_host
    assert reverse("host-permissions", args=[world.host.pk]) in (
        session(world.root).get(reverse("hosts:detail", args=[world.host.pk])).content.decode()
    )


def test_the_tab_is_404_for_whoever_cannot_see_the_object_and_403_for_others(world):
    url = reverse("vm-permissions", args=[world.vm.pk])
    assert session(world.bob).get(url).status_code == 404
    assert session(world.alice).get(url).status_code == 403  # her VM, but no user.manage on it
    assert session(world.oscar).get(url).status_code == 403
    grant_url = reverse("vm-permissions-grant", args=[world.vm.pk])
    vmuser = Role.objects.get(name="VMUser")
    assert session(world.alice).post(grant_url, {"role": vmuser.pk, "user": world.bob.pk}).status_code == 403
    assert not Grant.objects.filter(user=world.bob).exists()


def test_a_manager_grants_a_role_to_a_group_and_its_members_show_with_access_via_the_group(world):
    ops = Group.objects.create(name="ops")
    world.bob.groups.add(ops)
    operator = Role.objects.get(name="Operator")
    response = session(world.root).post(
        reverse("vm-permissions-grant", args=[world.vm.pk]), {"role": operator.pk, "group": ops.pk, "propagate": "on"}
    )
    assert response.status_code == 302
    grant = Grant.objects.get(group=ops, scope=world.vm.scope, role=operator)
    assert AuditEvent.objects.filter(verb="grant.create", target_id=str(grant.pk)).exists()
    html = session(world.root).get(reverse("vm-permissions", args=[world.vm.pk])).content.decode()
    bob_row = rows_of(html, "access-table").split('data-username="bob"')[1].split("</tr>")[0]
    assert f"Operator on {world.vm.scope} (via group ops)" in bob_row


def test_granting_to_both_a_user_and_a_group_is_400(world):
    ops = Group.objects.create(name="ops")
    data = {"role": Role.objects.get(name="VMUser").pk, "user": world.bob.pk, "group": ops.pk}
    response = session(world.root).post(reverse("vm-permissions-grant", args=[world.vm.pk]), data)
    assert response.status_code == 400
    assert "not both" in response.content.decode()


def test_a_manager_revokes_a_grant_here_but_an_inherited_one_only_on_its_own_object(world):
    root = session(world.root)
    alices = Grant.objects.get(user=world.alice, scope=world.vm.scope)
    oscars = Grant.objects.get(user=world.oscar, scope=world.host.scope)
    assert root.post(reverse("vm-permissions-revoke", args=[world.vm.pk, oscars.pk])).status_code == 404
    assert root.post(reverse("vm-permissions-revoke", args=[world.vm.pk, alices.pk])).status_code == 302
    assert not Grant.objects.filter(pk=alices.pk).exists()
    assert AuditEvent.objects.filter(verb="grant.delete", target_id=str(alices.pk)).exists()
    assert root.post(reverse("host-permissions-revoke", args=[world.host.pk, oscars.pk])).status_code == 302
    assert not Grant.objects.filter(pk=oscars.pk).exists()


def test_user_manage_on_a_host_gives_the_tab_on_its_vms_but_not_elsewhere(world):
    host_admin = Role.objects.create(name="HostAdmin", privileges=["host.view", "vm.view", "user.manage"])
    dave = make_user("dave")
    grant_role(actor=world.root, role=host_admin, scope=world.host.scope, user=dave)
    dave_session = session(dave)
    assert dave_session.get(reverse("host-permissions", args=[world.host.pk])).status_code == 200
    assert dave_session.get(reverse("vm-permissions", args=[world.vm.pk])).status_code == 200
    project = Project.objects.create(name="elsewhere")
    assert dave_session.get(reverse("project-permissions", args=[project.pk])).status_code == 404
    vmuser = Role.objects.get(name="VMUser")
    data = {"role": vmuser.pk, "user": world.bob.pk, "propagate": "on"}
    assert dave_session.post(reverse("vm-permissions-grant", args=[world.vm.pk]), data).status_code == 302
    assert Grant.objects.filter(user=world.bob, scope=world.vm.scope, created_by=dave).exists()


def test_a_project_tab_lists_its_members_and_the_vms_in_it_inherit_them(world):
    project = Project.objects.create(name="team")
    world.vm.project = project
    world.vm.save(update_fields=["project"])
    grant_role(actor=world.root, role="VMUser", scope=project.scope, user=world.bob)
    html = session(world.root).get(reverse("project-permissions", args=[project.pk])).content.decode()
    assert "bob" in rows_of(html, "grants-here")
    vm_html = session(world.root).get(reverse("vm-permissions", args=[world.vm.pk])).content.decode()
    inherited = rows_of(vm_html, "grants-inherited")
    assert "bob" in inherited and reverse("project-permissions", args=[project.pk]) in inherited
    assert f"inherited from {project.scope}" in rows_of(vm_html, "access-table")
    assert session(world.carol).get(reverse("project-permissions", args=[project.pk])).status_code == 404
