"""TOTP devices, recovery codes, the two-step login and the user's own 2FA page (django test client)."""

import re

import pytest
from django.db import connection
from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY

from apps.accounts.otp import services
from apps.accounts.otp.models import RecoveryCode, TotpDevice
from apps.audit.models import AuditEvent
from kvmpanel import secrets as panel_secrets
from tests.accounts.two_factor_support import code_for, enroll, log_in_with_code
from tests.conftest import PASSWORD, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def tina():
    return make_user("tina")


def _row_text(table: str, pk: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {table} WHERE id = %s", [pk])  # noqa: S608 - fixed table names
        return " ".join(str(value) for value in cursor.fetchone())


def test_the_seed_is_encrypted_in_the_database_row(tina):
    device, _codes = enroll(tina)
    row = _row_text("two_factor_totpdevice", device.pk)
    assert device.base32_secret not in row
    assert device.bin_key.hex() not in row
    assert device.base32_secret.lower() not in row.lower()
    assert panel_secrets.decrypt(device.encrypted_key) == device.bin_key.hex()
    assert len(device.bin_key) == 20


def test_recovery_codes_are_stored_as_hashes_only(tina):
    _device, codes = enroll(tina)
    assert len(codes) == 10
    stored = " ".join(_row_text("two_factor_recoverycode", code.pk) for code in RecoveryCode.objects.all())
    for code in codes:
        assert code not in stored
        assert code.replace("-", "") not in stored
    assert RecoveryCode.objects.count() == 10


def test_a_code_is_refused_the_second_time(tina):
    device, _codes = enroll(tina)
    code = code_for(device)
    assert device.verify_token(code)
    device.refresh_from_db()
    device.throttle_reset()
    assert not device.verify_token(code)


def test_a_recovery_code_works_once(tina):
    _device, codes = enroll(tina)
    accepted, _throttled = services.verify_second_factor(tina, codes[3].upper())
    assert accepted is not None
    accepted.throttle_reset()
    again, _throttled = services.verify_second_factor(tina, codes[3])
    assert again is None
    assert accepted.remaining == 9
    assert AuditEvent.objects.filter(verb="user.two_factor.recovery_used", target_id=str(tina.pk)).exists()


def test_a_user_without_an_app_logs_in_with_the_password_alone(tina):
    client = Client()
    response = client.post("/login/", {"username": "tina", "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == "/vms/"
    assert client.get("/vms/").status_code == 200


def test_a_user_with_an_app_needs_a_code_after_the_password(tina):
    device, _codes = enroll(tina)
    client = Client()
    response = client.post("/login/", {"username": "tina", "password": PASSWORD})
    assert response["Location"] == "/login/verify/"
    # Password alone is no session: the panel still treats the browser as anonymous.
    assert client.get("/vms/")["Location"].startswith("/login/")
    assert client.get("/login/verify/").status_code == 200
    response = client.post("/login/verify/", {"code": code_for(device)})
    assert response.status_code == 302
    assert response["Location"] == "/vms/"
    assert client.session[DEVICE_ID_SESSION_KEY] == device.persistent_id
    assert client.get("/vms/").status_code == 200


def test_the_code_step_keeps_the_next_page(tina):
    device, _codes = enroll(tina)
    client = Client()
    client.post("/login/", {"username": "tina", "password": PASSWORD, "next": "/jobs/"})
    response = client.post("/login/verify/", {"code": code_for(device)})
    assert response["Location"] == "/jobs/"


def test_a_wrong_code_does_not_log_in(tina):
    enroll(tina)
    client = Client()
    response = log_in_with_code(client, "tina", PASSWORD, "000000")
    assert response.status_code == 400
    assert b"That code is not right" in response.content
    assert client.get("/vms/")["Location"].startswith("/login/")


def test_a_recovery_code_logs_in_and_says_how_many_are_left(tina):
    _device, codes = enroll(tina)
    client = Client()
    response = log_in_with_code(client, "tina", PASSWORD, codes[0])
    assert response["Location"] == "/vms/"
    page = client.get("/vms/").content.decode()
    assert "9 left" in page


def test_the_code_step_without_a_password_step_goes_back_to_login():
    response = Client().get("/login/verify/")
    assert response["Location"] == "/login/"


def test_enrollment_shows_a_qr_code_and_the_secret_then_turns_on_with_a_code(tina):
    client = Client()
    client.force_login(tina)
    assert b"start-two-factor" in client.get("/account/2fa/").content
    assert client.post("/account/2fa/setup/").status_code == 302
    page = client.get("/account/2fa/")
    assert page["Cache-Control"] == "no-store"
    device = TotpDevice.objects.get(user=tina)
    assert not device.confirmed
    text = page.content.decode()
    assert "<svg" in text
    assert device.base32_secret in text
    # Not on until a right code comes back.
    assert client.post("/account/2fa/confirm/", {"code": "123456"}).status_code == 400
    device.throttle_reset()
    response = client.post("/account/2fa/confirm/", {"code": code_for(device)})
    assert response.status_code == 200
    device.refresh_from_db()
    assert device.confirmed
    codes = re.findall(r"\b[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4}\b", response.content.decode())
    assert len(codes) == 10
    assert client.session[DEVICE_ID_SESSION_KEY] == device.persistent_id
    assert AuditEvent.objects.filter(verb="user.two_factor.enable", target_id=str(tina.pk)).exists()
    # The codes are shown once: the page after that does not carry them.
    assert codes[0] not in client.get("/account/2fa/").content.decode()


def test_a_second_enrollment_is_refused_while_one_is_on(tina):
    enroll(tina)
    with pytest.raises(services.ServiceError) as refused:
        services.begin_enrollment(actor=tina)
    assert refused.value.status == 409


def test_new_recovery_codes_replace_the_old_ones(tina):
    device, old = enroll(tina)
    client = Client()
    log_in_with_code(client, "tina", PASSWORD, code_for(device))
    response = client.post("/account/2fa/recovery-codes/")
    assert response.status_code == 200
    assert old[0] not in response.content.decode()
    assert services.verify_second_factor(tina, old[1])[0] is None


def test_turning_it_off_needs_the_password_or_a_code(tina):
    device, _codes = enroll(tina)
    client = Client()
    log_in_with_code(client, "tina", PASSWORD, code_for(device))
    assert client.post("/account/2fa/disable/", {"password_or_code": "wrong"}).status_code == 403
    assert TotpDevice.objects.filter(user=tina).exists()
    response = client.post("/account/2fa/disable/", {"password_or_code": PASSWORD})
    assert response.status_code == 302
    assert not TotpDevice.objects.filter(user=tina).exists()
    assert not RecoveryCode.objects.exists()
    assert AuditEvent.objects.filter(verb="user.two_factor.disable").exists()


def test_the_2fa_pages_refuse_get_for_their_actions(tina):
    client = Client()
    client.force_login(tina)
    for url in (
        "/account/2fa/setup/",
        "/account/2fa/confirm/",
        "/account/2fa/recovery-codes/",
        "/account/2fa/disable/",
    ):
        assert client.get(url).status_code == 405


def test_a_session_from_before_enrollment_must_give_a_code(tina):
    """A session logged in before the user enrolled elsewhere is held at the code step until it gives one."""
    old_session = Client()
    old_session.force_login(tina)
    device, _codes = enroll(tina)
    assert old_session.get("/vms/")["Location"] == "/login/verify/"
    response = old_session.post("/login/verify/", {"code": code_for(device)})
    assert response["Location"] == "/vms/"
    assert old_session.get("/vms/").status_code == 200
