"""`/account/users/`: the user administration page behind `user.manage` on "/"."""

from django.test import Client
from django.urls import reverse

from apps.accounts.models import Role, User


def session(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_a_manager_sees_every_user_and_others_get_403(world):
    page = session(world.root).get(reverse("account-users"))
    assert page.status_code == 200
    for name in ("alice", "bob", "carol", "oscar"):
        assert f">{name}<" in page.content.decode()
    assert b"pbkdf2" not in page.content
    assert session(world.alice).get(reverse("account-users")).status_code == 403


def test_creating_a_user_without_a_password_shows_a_generated_one_once(world):
    root = session(world.root)
    response = root.post(reverse("account-users"), {"username": "nina", "email": "n@example.org"})
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    password = response.context["password"]
    assert password and password in response.content.decode()
    assert Client().login(username="nina", password=password)
    assert password not in root.get(reverse("account-users")).content.decode()


def test_a_weak_password_is_refused_with_the_validators_message(world):
    response = session(world.root).post(reverse("account-users"), {"username": "nina", "password": "password"})
    assert response.status_code == 400
    assert "too common" in response.content.decode()
    assert not User.objects.filter(username="nina").exists()


def test_disabling_from_the_page_signs_the_user_out_and_enabling_lets_them_back(world):
    alice = session(world.alice)
    root = session(world.root)
    assert root.post(reverse("account-user-disable", args=[world.alice.pk])).status_code == 302
    assert alice.get(reverse("vms:list"))["Location"].startswith(reverse("login"))
    assert root.post(reverse("account-user-enable", args=[world.alice.pk])).status_code == 302
    assert User.objects.get(pk=world.alice.pk).is_active


def test_a_reset_password_is_shown_once_and_works(world):
    response = session(world.root).post(reverse("account-user-reset-password", args=[world.bob.pk]))
    assert response.status_code == 200
    assert Client().login(username="bob", password=response.context["password"])


def test_a_non_manager_cannot_disable_anyone(world):
    assert session(world.oscar).post(reverse("account-user-disable", args=[world.bob.pk])).status_code == 403
    assert User.objects.get(pk=world.bob.pk).is_active


# ---- /account/roles/ ----


def test_everyone_reads_the_roles_page_but_only_a_manager_gets_the_picker(world):
    page = session(world.bob).get(reverse("account-roles"))
    assert page.status_code == 200 and "VMUser" in page.content.decode()
    assert b'id="role-create"' not in page.content
    assert b'id="role-create"' in session(world.root).get(reverse("account-roles")).content


def test_a_manager_creates_a_custom_role_with_the_picker_and_deletes_it(world):
    root = session(world.root)
    response = root.post(reverse("account-roles"), {"name": "Restarter", "privileges": ["vm.view", "vm.power"]})
    assert response.status_code == 302
    role = Role.objects.get(name="Restarter")
    assert role.privileges == ["vm.power", "vm.view"] and not role.builtin
    assert root.post(reverse("account-role-delete", args=[role.pk])).status_code == 302
    assert not Role.objects.filter(pk=role.pk).exists()


def test_a_built_in_role_survives_a_delete_and_a_non_manager_cannot_create(world):
    vm_user = Role.objects.get(name="VMUser")
    session(world.root).post(reverse("account-role-delete", args=[vm_user.pk]))
    assert Role.objects.filter(pk=vm_user.pk).exists()
    response = session(world.oscar).post(reverse("account-roles"), {"name": "Mine", "privileges": ["vm.view"]})
    assert response.status_code == 403
    assert not Role.objects.filter(name="Mine").exists()
