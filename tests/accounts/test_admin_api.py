"""`/api/v1/users|groups|roles|grants/`: managers manage, delegation never escalates, disabling bites at once."""

from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse

from apps.accounts.models import ApiToken, Grant, Role, User
from apps.accounts.services import create_api_token, grant_role
from apps.audit.models import AuditEvent
from apps.console.services import ConsoleGrant, still_allowed
from tests.conftest import make_user

STRONG = "quiet meadow lantern 42"


def session(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def post(client: Client, path: str, data=None):
    return client.post(path, data or {}, content_type="application/json")


def a_manager() -> User:
    """Someone who holds only `user.manage` on "/" (not a superuser)."""
    manager = make_user("mia")
    role = Role.objects.create(name="UserManager", privileges=["user.manage"])
    grant_role(actor=None, role=role, scope="/", user=manager)
    return manager


# ---- users ----


def test_a_manager_creates_a_user_whose_generated_password_is_shown_once_and_works(world):
    response = post(session(a_manager()), reverse("user-list"), {"username": "nina", "email": "n@example.org"})
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["username"] == "nina" and "password" not in body
    assert Client().login(username="nina", password=body["generated_password"])
    listed = session(world.root).get(reverse("user-list")).json()["results"]
    assert all("password" not in row and "generated_password" not in row for row in listed)
    assert b"pbkdf2" not in session(world.root).get(reverse("user-list")).content
    assert AuditEvent.objects.filter(verb="user.create", target_repr="nina").exists()


def test_it_refuses_a_password_the_validators_reject(world):
    response = post(session(world.root), reverse("user-list"), {"username": "nina", "password": "password"})
    assert response.status_code == 400
    assert "too common" in response.json()["detail"] or "too short" in response.json()["detail"]
    assert not User.objects.filter(username="nina").exists()


def test_it_refuses_a_duplicate_username(world):
    response = post(session(world.root), reverse("user-list"), {"username": "Alice", "password": STRONG})
    assert response.status_code == 409


def test_someone_without_user_manage_cannot_list_or_create_users(world):
    assert session(world.alice).get(reverse("user-list")).status_code == 403
    assert post(session(world.oscar), reverse("user-list"), {"username": "x", "password": STRONG}).status_code == 403
    assert not User.objects.filter(username="x").exists()


def test_a_manager_sets_a_given_password_and_a_weak_one_is_refused(world):
    manager = a_manager()
    url = reverse("user-reset-password", args=[world.bob.pk])
    assert post(session(manager), url, {"password": "12345678901"}).status_code == 400
    response = post(session(manager), url, {"password": STRONG})
    assert response.status_code == 200 and "generated_password" not in response.json()
    assert Client().login(username="bob", password=STRONG)
    generated = post(session(manager), url).json()["generated_password"]
    assert Client().login(username="bob", password=generated)
    event = AuditEvent.objects.filter(verb="user.reset_password").latest("pk")
    assert generated not in str(event.detail) and STRONG not in str(event.detail)


def test_a_manager_who_is_not_a_superuser_cannot_touch_a_superuser(world):
    manager = a_manager()
    assert post(session(manager), reverse("user-reset-password", args=[world.root.pk])).status_code == 403
    assert post(session(manager), reverse("user-disable", args=[world.root.pk])).status_code == 403
    assert User.objects.get(pk=world.root.pk).is_active


def test_nobody_disables_themselves(world):
    assert post(session(world.root), reverse("user-disable", args=[world.root.pk])).status_code == 409


def test_a_disabled_users_session_ends_on_its_next_request(world):
    alice = session(world.alice)
    assert alice.get(reverse("vms:list")).status_code == 200
    assert alice.get(reverse("vm-list")).status_code == 200
    response = post(session(world.root), reverse("user-disable", args=[world.alice.pk]))
    assert response.status_code == 200 and response.json()["is_active"] is False
    page = alice.get(reverse("vms:list"))
    assert page.status_code == 302 and page["Location"].startswith(reverse("login"))
    assert alice.get(reverse("vm-list")).status_code == 401
    assert AuditEvent.objects.filter(verb="user.disable", target_id=str(world.alice.pk)).exists()


def test_a_disabled_users_api_token_is_refused_and_works_again_when_enabled(world):
    _token, secret = create_api_token(actor=world.alice, user=world.alice)
    headers = {"HTTP_AUTHORIZATION": f"Token {secret}"}
    assert Client().get(reverse("vm-list"), **headers).status_code == 200
    post(session(world.root), reverse("user-disable", args=[world.alice.pk]))
    assert Client().get(reverse("vm-list"), **headers).status_code == 401
    post(session(world.root), reverse("user-enable", args=[world.alice.pk]))
    assert Client().get(reverse("vm-list"), **headers).status_code == 200
    assert ApiToken.objects.filter(user=world.alice, revoked_at__isnull=True).exists()


def _console_grant(world) -> ConsoleGrant:
    vm = world.running_vm
    return ConsoleGrant(
        user_id=world.alice.pk,
        vm_id=vm.pk,
        host_id=vm.host_id,
        uuid=vm.uuid,
        kind="vnc",
        endpoint="",
        view_only=False,
        session="",
        issued_at=0.0,
    )


def test_the_console_watchdog_check_refuses_a_disabled_user(world):
    # apps.console.consumers.ConsoleConsumer.watch() calls services.still_allowed every
    # KVMPANEL_CONSOLE_RECHECK_SECONDS and closes the console when it gives a reason.
    grant = _console_grant(world)
    assert still_allowed(grant) is None
    post(session(world.root), reverse("user-disable", args=[world.alice.pk]))
    assert still_allowed(grant) == "user disabled or deleted"


def test_the_console_watchdog_check_refuses_after_the_grant_is_revoked(world):
    grant = _console_grant(world)
    owner_grant = Grant.objects.get(user=world.alice, scope=world.running_vm.scope)
    assert session(world.root).delete(reverse("grant-detail", args=[owner_grant.pk])).status_code == 204
    assert still_allowed(grant) == "console privilege revoked"


# ---- groups ----


def test_a_manager_creates_renames_and_deletes_a_group_with_its_members(world):
    manager = session(a_manager())
    response = post(manager, reverse("group-list"), {"name": "ops", "members": [world.bob.pk, world.carol.pk]})
    assert response.status_code == 201, response.content
    group_id = response.json()["id"]
    assert sorted(response.json()["members"]) == sorted([world.bob.pk, world.carol.pk])
    response = manager.patch(
        reverse("group-detail", args=[group_id]),
        {"name": "operators", "members": [world.bob.pk]},
        content_type="application/json",
    )
    assert response.status_code == 200 and response.json() == {
        "id": group_id,
        "name": "operators",
        "members": [world.bob.pk],
    }
    assert post(manager, reverse("group-list"), {"name": "x", "members": [999999]}).status_code == 400
    assert manager.delete(reverse("group-detail", args=[group_id])).status_code == 204
    assert not Group.objects.filter(pk=group_id).exists()
    verbs = set(AuditEvent.objects.filter(verb__startswith="group.").values_list("verb", flat=True))
    assert verbs == {"group.create", "group.update", "group.delete"}


def test_someone_without_user_manage_cannot_see_groups(world):
    assert session(world.oscar).get(reverse("group-list")).status_code == 403
    assert post(session(world.alice), reverse("group-list"), {"name": "mine"}).status_code == 403


# ---- roles ----


def test_everyone_signed_in_reads_the_roles_but_only_managers_write_them(world):
    names = {row["name"] for row in session(world.bob).get(reverse("role-list")).json()["results"]}
    assert {"Administrator", "VMUser", "NoAccess"} <= names
    data = {"name": "Restarter", "privileges": ["vm.view", "vm.power"]}
    assert post(session(world.bob), reverse("role-list"), data).status_code == 403
    response = post(session(a_manager()), reverse("role-list"), data)
    assert response.status_code == 201 and response.json()["builtin"] is False
    assert Role.objects.get(name="Restarter").privileges == ["vm.power", "vm.view"]


def test_it_refuses_an_unknown_privilege(world):
    response = post(session(world.root), reverse("role-list"), {"name": "Bad", "privileges": ["vm.fly"]})
    assert response.status_code == 400
    assert not Role.objects.filter(name="Bad").exists()


def test_built_in_roles_are_read_only(world):
    vm_user = Role.objects.get(name="VMUser")
    url = reverse("role-detail", args=[vm_user.pk])
    response = session(world.root).patch(url, {"privileges": ["vm.view"]}, content_type="application/json")
    assert response.status_code == 409
    assert session(world.root).delete(url).status_code == 409
    assert "vm.power" in Role.objects.get(pk=vm_user.pk).privileges


def test_a_custom_role_is_edited_and_cannot_be_deleted_while_granted(world):
    role = Role.objects.create(name="Restarter", privileges=["vm.view"])
    url = reverse("role-detail", args=[role.pk])
    response = session(world.root).patch(url, {"privileges": ["vm.view", "vm.power"]}, content_type="application/json")
    assert response.status_code == 200 and response.json()["privileges"] == ["vm.power", "vm.view"]
    grant_role(actor=world.root, role=role, scope="/", user=world.bob)
    assert session(world.root).delete(url).status_code == 409
    Grant.objects.filter(role=role).delete()
    assert session(world.root).delete(url).status_code == 204


# ---- grants: delegation without escalation ----


def grant(client: Client, role: str, scope: str, user: User | None = None, group: Group | None = None):
    data = {"role": role, "scope": scope, "user": user and user.pk, "group": group and group.pk}
    return post(client, reverse("grant-list"), data)


def test_a_vm_owner_shares_vmuser_on_their_vm_with_a_colleague(world):
    assert session(world.bob).get(reverse("vm-detail", args=[world.vm.pk])).status_code == 404
    response = grant(session(world.alice), "VMUser", world.vm.scope, user=world.bob)
    assert response.status_code == 201, response.content
    assert response.json()["role_name"] == "VMUser" and response.json()["username"] == "bob"
    assert session(world.bob).get(reverse("vm-detail", args=[world.vm.pk])).status_code == 200
    event = AuditEvent.objects.filter(verb="grant.create").latest("pk")
    assert event.actor_id == world.alice.pk and event.detail["user"] == "bob"


def test_a_vm_owner_cannot_grant_operator_on_their_vm(world):
    response = grant(session(world.alice), "Operator", world.vm.scope, user=world.bob)
    assert response.status_code == 403
    assert not Grant.objects.filter(user=world.bob).exists()


def test_a_vm_owner_cannot_grant_on_a_vm_they_do_not_own(world):
    other = world.host.vms.exclude(pk__in=[world.vm.pk, world.running_vm.pk]).first()
    assert grant(session(world.alice), "VMUser", other.scope, user=world.bob).status_code == 403


def test_nobody_grants_administrator_without_holding_it(world):
    assert grant(session(world.oscar), "Administrator", world.host.scope, user=world.bob).status_code == 403
    assert grant(session(world.oscar), "Administrator", "/", user=world.bob).status_code == 403
    assert grant(session(world.alice), "NoAccess", world.vm.scope, user=world.bob).status_code == 403
    assert grant(session(world.root), "Administrator", world.host.scope, user=world.bob).status_code == 201


def test_an_operator_delegates_what_they_hold_on_their_host_to_a_group(world):
    team = Group.objects.create(name="team")
    world.bob.groups.add(team)
    response = grant(session(world.oscar), "VMUser", world.host.scope, group=team)
    assert response.status_code == 201, response.content
    assert session(world.bob).get(reverse("vm-detail", args=[world.vm.pk])).status_code == 200


def test_a_user_manager_on_the_scope_may_grant_any_role_there(world):
    assert grant(session(a_manager()), "Operator", world.host.scope, user=world.bob).status_code == 201


def test_bad_grants_are_400_not_500(world):
    root = session(world.root)
    assert grant(root, "VMUser", "/nowhere/1", user=world.bob).status_code == 400
    assert grant(root, "VMUser", "/vms/999999", user=world.bob).status_code == 400
    assert grant(root, "Nobody", "/", user=world.bob).status_code == 400
    assert grant(root, "VMUser", "/").status_code == 400
    assert post(root, reverse("grant-list"), {"role": "VMUser", "scope": "/", "user": 999999}).status_code == 400


def test_the_delegate_revokes_their_grant_and_it_bites_on_the_next_request(world):
    made = grant(session(world.alice), "VMUser", world.vm.scope, user=world.bob).json()
    bob = session(world.bob)
    assert bob.get(reverse("vm-detail", args=[world.vm.pk])).status_code == 200
    assert session(world.carol).delete(reverse("grant-detail", args=[made["id"]])).status_code == 404
    assert session(world.alice).delete(reverse("grant-detail", args=[made["id"]])).status_code == 204
    assert bob.get(reverse("vm-detail", args=[world.vm.pk])).status_code == 404
    assert AuditEvent.objects.filter(verb="grant.delete", actor=world.alice).exists()


def test_a_user_cannot_lift_a_noaccess_put_on_them(world):
    blocked = grant_role(actor=world.root, role="NoAccess", scope=world.running_vm.scope, user=world.carol)
    assert session(world.carol).delete(reverse("grant-detail", args=[blocked.pk])).status_code == 403
    assert Grant.objects.filter(pk=blocked.pk).exists()


def test_grant_lists_show_a_non_manager_only_their_own_and_those_they_made(world):
    grant(session(world.alice), "VMUser", world.vm.scope, user=world.bob)
    mine = session(world.alice).get(reverse("grant-list")).json()["results"]
    assert {(row["username"], row["scope"]) for row in mine} == {
        ("alice", world.vm.scope),
        ("alice", world.running_vm.scope),
        ("bob", world.vm.scope),
    }
    everyone = session(world.root).get(reverse("grant-list"), {"scope": world.host.scope}).json()["results"]
    assert {row["username"] for row in everyone} == {"carol", "oscar"}


def test_a_project_member_shares_their_role_on_the_project_but_nothing_bigger(world):
    from apps.accounts.models import Project

    project = Project.objects.create(name="team")
    grant_role(actor=world.root, role="VMUser", scope=project.scope, user=world.carol)
    assert grant(session(world.carol), "VMUser", project.scope, user=world.bob).status_code == 201
    assert grant(session(world.carol), "Operator", project.scope, user=world.bob).status_code == 403
    assert grant(session(world.root), "VMUser", f"/projects/{project.pk + 1000}", user=world.bob).status_code == 400
