"""Password validation wherever a password is set: one's own change, user creation and reset (page and API)."""

import pytest
from django.test import Client

from apps.audit.models import AuditEvent
from tests.accounts.two_factor_support import code_for, enroll, log_in_with_code
from tests.conftest import PASSWORD, make_user

pytestmark = pytest.mark.django_db
NEW = "a much better passphrase"


@pytest.fixture
def tina():
    return make_user("tina")


def _signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _change(client: Client, new: str, old: str = PASSWORD):
    return client.post("/account/password/", {"old_password": old, "new_password1": new, "new_password2": new})


def test_ones_own_new_password_must_pass_the_validators(tina):
    client = _signed_in(tina)
    response = _change(client, "12345")
    assert response.status_code == 400
    text = response.content.decode()
    assert "too short" in text and "entirely numeric" in text
    assert _change(client, "password123").status_code == 400  # too common
    tina.refresh_from_db()
    assert tina.check_password(PASSWORD)


def test_ones_own_password_changes_with_the_old_one_and_the_session_stays(tina):
    client = _signed_in(tina)
    assert _change(client, NEW, old="not it").status_code == 400
    assert _change(client, NEW).status_code == 302
    tina.refresh_from_db()
    assert tina.check_password(NEW)
    assert client.get("/vms/").status_code == 200
    assert AuditEvent.objects.filter(verb="user.change_password", actor=tina).exists()


def test_a_verified_session_stays_verified_after_a_password_change(tina):
    device, _codes = enroll(tina)
    client = Client()
    log_in_with_code(client, "tina", PASSWORD, code_for(device))
    assert _change(client, NEW).status_code == 302
    assert client.get("/vms/").status_code == 200


def test_a_weak_password_is_refused_when_an_admin_creates_a_user(world):
    root = _signed_in(world.root)
    page = root.post("/account/users/", {"username": "nina", "password": "nina"})
    assert page.status_code == 400
    assert "too short" in page.content.decode()
    api = root.post("/api/v1/users/", {"username": "nina", "password": "12345678901"}, content_type="application/json")
    assert api.status_code == 400
    assert "entirely numeric" in api.json()["detail"]


def test_a_weak_password_is_refused_when_an_admin_resets_one(world, tina):
    root = _signed_in(world.root)
    url = f"/api/v1/users/{tina.pk}/reset-password/"
    response = root.post(url, {"password": "tina12"}, content_type="application/json")
    assert response.status_code == 400
    assert "too short" in response.json()["detail"]
    tina.refresh_from_db()
    assert tina.check_password(PASSWORD)
