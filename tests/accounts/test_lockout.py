"""Login lockout (django-axes): N failures for a username from an address, passwords and codes alike."""

import pytest
from django.conf import settings
from django.test import Client, override_settings

from apps.audit.models import AuditEvent
from tests.accounts.two_factor_support import code_for, enroll
from tests.conftest import PASSWORD, make_user

pytestmark = pytest.mark.django_db
LIMIT = settings.AXES_FAILURE_LIMIT


@pytest.fixture
def tina():
    return make_user("tina")


def _fail_passwords(client: Client, times: int, username: str = "tina"):
    response = None
    for _ in range(times):
        response = client.post("/login/", {"username": username, "password": "not the password"})
    return response


def test_the_defaults_are_five_failures_and_fifteen_minutes():
    assert settings.AXES_FAILURE_LIMIT == 5
    assert settings.AXES_COOLOFF_TIME.total_seconds() == 15 * 60


def test_it_locks_the_username_out_after_n_wrong_passwords_with_a_clear_message(tina):
    client = Client()
    assert _fail_passwords(client, LIMIT - 1).status_code == 200  # the form again, with its error
    last = _fail_passwords(client, 1)
    assert last.status_code == 429
    assert "Too many failed attempts" in last.content.decode()
    # The right password is refused too, on the same page, while the lockout lasts.
    refused = client.post("/login/", {"username": "tina", "password": PASSWORD})
    assert refused.status_code == 429
    assert b'id="lockout-message"' in refused.content
    assert client.get("/vms/")["Location"].startswith("/login/")
    event = AuditEvent.objects.filter(verb="user.lockout", target_id=str(tina.pk)).order_by("pk").first()
    assert event is not None
    assert event.detail["failures"] == LIMIT
    assert event.client_address == "127.0.0.1"


def test_a_lockout_is_per_username_and_address(tina):
    make_user("uma")
    _fail_passwords(Client(), LIMIT)
    assert Client().post("/login/", {"username": "uma", "password": PASSWORD}).status_code == 302
    elsewhere = Client(REMOTE_ADDR="10.9.9.9")
    assert elsewhere.post("/login/", {"username": "tina", "password": PASSWORD}).status_code == 302


def test_a_successful_login_forgets_earlier_failures(tina):
    client = Client()
    _fail_passwords(client, LIMIT - 1)
    assert client.post("/login/", {"username": "tina", "password": PASSWORD}).status_code == 302
    client.post("/logout/")
    _fail_passwords(client, LIMIT - 1)
    assert client.post("/login/", {"username": "tina", "password": PASSWORD}).status_code == 302


@override_settings(OTP_TOTP_THROTTLE_FACTOR=0)
def test_wrong_codes_on_the_second_step_count_toward_the_lockout(tina):
    device, _codes = enroll(tina)
    client = Client()
    client.post("/login/", {"username": "tina", "password": PASSWORD})
    for _ in range(LIMIT - 1):
        assert client.post("/login/verify/", {"code": "000000"}).status_code == 400
    locked = client.post("/login/verify/", {"code": "000000"})
    assert locked.status_code == 429
    assert "Too many failed attempts" in locked.content.decode()
    # The step is over: the right code now leads back to the password, which is refused.
    assert client.post("/login/verify/", {"code": code_for(device)})["Location"] == "/login/"
    assert client.post("/login/", {"username": "tina", "password": PASSWORD}).status_code == 429
    assert AuditEvent.objects.filter(verb="user.lockout", target_id=str(tina.pk)).exists()


def test_an_admin_unlocks_a_user_from_the_api(world, tina):
    client = Client()
    _fail_passwords(client, LIMIT)
    root = Client()
    root.force_login(world.root)
    assert root.get(f"/api/v1/users/{tina.pk}/two-factor/").json()["locked_out"] is True
    response = root.post(f"/api/v1/users/{tina.pk}/unlock/", content_type="application/json")
    assert response.status_code == 200
    assert response.json()["locked_out"] is False
    assert client.post("/login/", {"username": "tina", "password": PASSWORD}).status_code == 302
    assert AuditEvent.objects.filter(verb="user.unlock", target_id=str(tina.pk), actor=world.root).exists()


def test_an_admin_unlocks_a_user_from_the_users_page(world, tina):
    _fail_passwords(Client(), LIMIT)
    root = Client()
    root.force_login(world.root)
    page = root.get("/account/users/").content.decode()
    assert "locked out" in page
    assert f"/account/users/{tina.pk}/unlock/" in page
    assert root.post(f"/account/users/{tina.pk}/unlock/").status_code == 302
    assert "locked out" not in root.get("/account/users/").content.decode()
    assert Client().post("/login/", {"username": "tina", "password": PASSWORD}).status_code == 302


def test_unlocking_needs_user_manage(world, tina):
    bob = Client()
    bob.force_login(world.bob)
    assert bob.post(f"/account/users/{tina.pk}/unlock/").status_code == 403
    assert bob.post(f"/api/v1/users/{tina.pk}/unlock/").status_code == 403


def test_the_test_clients_login_still_works(tina):
    """Client.login authenticates without a request: nothing to lock out, so it passes straight through."""
    assert Client().login(username="tina", password=PASSWORD)
    assert not Client().login(username="tina", password="wrong")
