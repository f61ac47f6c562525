"""`/account/effective/` and `GET /api/v1/users/{id}/effective/`: one's own access, or anyone's with user.manage."""

from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse

from apps.accounts.models import Role
from apps.accounts.services import grant_role
from tests.conftest import make_user


def session(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def page(client: Client, username: str, scope: str):
    return client.get(reverse("account-effective"), {"user": username, "scope": scope})


def api(client: Client, user_id: int, scope: str | None = None):
    url = reverse("user-effective", args=[user_id])
    return client.get(url, {"scope": scope} if scope is not None else {})


def test_the_page_without_a_question_shows_the_form_to_everyone_signed_in(world):
    response = session(world.bob).get(reverse("account-effective"))
    assert response.status_code == 200
    assert 'id="effective-form"' in response.content.decode()
    assert 'id="effective-table"' not in response.content.decode()


def test_a_user_sees_why_they_may_use_their_own_vm(world):
    response = page(session(world.alice), "alice", world.vm.scope)
    assert response.status_code == 200
    body = response.content.decode()
    assert 'data-privilege="vm.power" data-allowed="yes" data-reason="granted"' in body
    assert 'data-privilege="vm.clone" data-allowed="no" data-reason="not-in-role"' in body
    assert f"VMUser on {world.vm.scope} (own grant)" in body


def test_a_manager_sees_a_users_access_via_a_group_inherited_from_the_host(world):
    ops = Group.objects.create(name="ops")
    world.bob.groups.add(ops)
    grant_role(actor=world.root, role="Operator", scope=world.host.scope, group=ops)
    body = page(session(world.root), "bob", world.vm.scope).content.decode()
    assert 'data-privilege="vm.clone" data-allowed="yes"' in body
    assert f"Operator on {world.host.scope} (via group ops)" in body
    assert f"Inherited from {world.host.scope}" in body


def test_another_users_access_is_403_for_someone_who_sees_the_object_without_user_manage(world):
    assert page(session(world.carol), "alice", world.vm.scope).status_code == 403
    assert page(session(world.carol), "nobody-such", world.vm.scope).status_code == 403  # no account probe
    assert api(session(world.carol), world.alice.pk, world.vm.scope).status_code == 403


def test_an_object_the_asker_cannot_see_is_404_even_for_their_own_access(world):
    assert page(session(world.bob), "bob", world.vm.scope).status_code == 404
    assert api(session(world.bob), world.bob.pk, world.vm.scope).status_code == 404
    assert page(session(world.root), "bob", "/vms/999999").status_code == 404


def test_a_malformed_scope_is_400_and_an_unknown_user_404_for_a_manager(world):
    response = page(session(world.root), "alice", "/nowhere/1")
    assert response.status_code == 400
    assert "Unknown scope" in response.content.decode()
    assert api(session(world.root), world.alice.pk, "/vms/x").status_code == 400
    assert page(session(world.root), "nobody-such", "/").status_code == 404
    assert api(session(world.root), 999999, "/").status_code == 404


def test_user_manage_on_a_host_lets_one_explain_others_there_and_not_on_root(world):
    delegate = Role.objects.create(name="HostAdmin", privileges=["host.view", "vm.view", "user.manage"])
    dave = make_user("dave")
    grant_role(actor=world.root, role=delegate, scope=world.host.scope, user=dave)
    assert page(session(dave), "alice", world.vm.scope).status_code == 200
    assert api(session(dave), world.alice.pk, world.host.scope).status_code == 200
    assert page(session(dave), "alice", "/").status_code == 403
    assert page(session(dave), "dave", "/").status_code == 200  # one's own, anywhere


def test_the_api_explains_each_privilege_with_the_deciding_grant(world):
    response = api(session(world.alice), world.alice.pk, world.vm.scope)
    assert response.status_code == 200
    body = response.json()
    assert body["user"] == "alice" and body["scope"] == world.vm.scope and body["object"] == world.vm.name
    assert body["chain"] == [world.vm.scope, world.host.scope, "/"]
    assert body["deciding_scope"] == world.vm.scope and body["inherited_from"] is None
    by_name = {item["privilege"]: item for item in body["privileges"]}
    assert by_name["vm.power"]["allowed"] is True
    assert by_name["vm.power"]["grants"][0] | {"id": 0} == {
        "id": 0,
        "role": "VMUser",
        "scope": world.vm.scope,
        "propagate": True,
        "group": None,
        "via": "user",
    }
    assert by_name["vm.clone"]["allowed"] is False and by_name["vm.clone"]["reason"] == "not-in-role"


def test_the_api_defaults_to_root_and_explains_no_access_with_what_it_beat(world):
    grant_role(actor=world.root, role="NoAccess", scope=world.vm.scope, user=world.oscar)
    body = api(session(world.root), world.oscar.pk, world.vm.scope).json()
    view = {item["privilege"]: item for item in body["privileges"]}["vm.view"]
    assert view["reason"] == "no-access" and view["allowed"] is False
    assert [(o["reason"], o["grant"]["role"]) for o in view["overridden"]] == [("deeper", "Operator")]
    assert api(session(world.root), world.oscar.pk).json()["scope"] == "/"


def test_a_superuser_and_a_disabled_user_are_explained_on_the_page(world):
    assert 'data-reason="superuser"' in page(session(world.root), "root", "/").content.decode()
    world.alice.is_active = False
    world.alice.save()
    body = page(session(world.root), "alice", world.vm.scope).content.decode()
    assert 'data-allowed="yes"' not in body and 'data-reason="inactive"' in body
