"""2FA required by an administrator, of a user or of a group: enrollment first, nothing else until then."""

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth.models import Group
from django.test import Client

from apps.accounts.otp import services
from apps.accounts.otp.models import TotpDevice, TwoFactorRequirement
from apps.accounts.services import create_api_token
from apps.audit.models import AuditEvent
from kvmpanel.asgi import application
from tests.accounts.two_factor_support import code_for, enroll, log_in_with_code
from tests.conftest import PASSWORD, make_user


@pytest.fixture
def tina(world):
    return make_user("tina")


def _require(world, user):
    services.set_user_two_factor_required(user, actor=world.root, required=True)


@pytest.mark.django_db
def test_a_user_who_must_use_2fa_is_sent_to_enrollment_after_the_password(world, tina):
    _require(world, tina)
    client = Client()
    response = client.post("/login/", {"username": "tina", "password": PASSWORD})
    assert response["Location"] == "/account/2fa/"
    # Pages lead back to enrollment; the API says why.
    assert client.get("/vms/")["Location"] == "/account/2fa/"
    assert client.get("/account/tokens/")["Location"] == "/account/2fa/"
    api = client.get("/api/v1/vms/")
    assert api.status_code == 403
    assert "two-factor" in api.json()["detail"]
    assert client.get("/account/2fa/").status_code == 200


@pytest.mark.django_db
def test_enrolling_lets_the_forced_user_in(world, tina):
    _require(world, tina)
    client = Client()
    client.post("/login/", {"username": "tina", "password": PASSWORD})
    client.post("/account/2fa/setup/")
    device = TotpDevice.objects.get(user=tina)
    response = client.post("/account/2fa/confirm/", {"code": code_for(device)})
    assert response.status_code == 200
    assert client.get("/vms/").status_code == 200
    assert client.get("/api/v1/vms/").status_code == 200


@pytest.mark.django_db
def test_a_group_requirement_holds_its_members(world, tina):
    team = Group.objects.create(name="team")
    tina.groups.add(team)
    services.set_group_two_factor_required(team, actor=world.root, required=True)
    client = Client()
    client.force_login(tina)
    assert client.get("/vms/")["Location"] == "/account/2fa/"
    assert AuditEvent.objects.filter(verb="group.two_factor.require", target_id=str(team.pk)).exists()
    services.set_group_two_factor_required(team, actor=world.root, required=False)
    assert client.get("/vms/").status_code == 200


@pytest.mark.django_db
def test_a_forced_user_cannot_turn_2fa_off(world, tina):
    _require(world, tina)
    device, _codes = enroll(tina)
    client = Client()
    log_in_with_code(client, "tina", PASSWORD, code_for(device))
    response = client.post("/account/2fa/disable/", {"password_or_code": PASSWORD})
    assert response.status_code == 409
    assert TotpDevice.objects.filter(user=tina, confirmed=True).exists()


@pytest.mark.django_db
def test_an_api_token_stays_usable_for_a_user_who_has_not_enrolled(world, tina):
    _require(world, tina)
    _token, secret = create_api_token(actor=tina, user=tina)
    response = Client().get("/api/v1/vms/", HTTP_AUTHORIZATION=f"Token {secret}")
    assert response.status_code == 200
    # Another Authorization scheme does not get around the hold on the session.
    client = Client()
    client.force_login(tina)
    assert client.get("/api/v1/vms/", HTTP_AUTHORIZATION="Basic Zm9vOmJhcg==").status_code == 403


def _connect(path: str, cookie: str) -> bool:
    async def run():
        headers = [(b"origin", b"http://127.0.0.1"), (b"cookie", f"{settings.SESSION_COOKIE_NAME}={cookie}".encode())]
        communicator = WebsocketCommunicator(application, path, headers=headers)
        connected, _code = await communicator.connect()
        await communicator.disconnect()
        return connected

    return async_to_sync(run)()


@pytest.mark.django_db(transaction=True)
def test_websockets_of_an_unverified_session_are_refused(world, tina):
    from apps.accounts.services import grant_role

    grant_role(actor=world.root, role="VMUser", scope=world.vm.scope, user=tina)
    _require(world, tina)
    client = Client()
    client.post("/login/", {"username": "tina", "password": PASSWORD})
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    assert _connect(f"/ws/vms/{world.vm.pk}/", cookie) is False
    assert _connect("/ws/vms/", cookie) is False
    client.post("/account/2fa/setup/")
    client.post("/account/2fa/confirm/", {"code": code_for(TotpDevice.objects.get(user=tina))})
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    assert _connect(f"/ws/vms/{world.vm.pk}/", cookie) is True


@pytest.mark.django_db
def test_an_admin_forces_2fa_from_the_users_page_and_the_api(world, tina):
    root = Client()
    root.force_login(world.root)
    assert root.post(f"/account/users/{tina.pk}/two-factor/", {"required": "1"}).status_code == 302
    assert TwoFactorRequirement.objects.filter(user=tina).exists()
    page = root.get("/account/users/").content.decode()
    assert "Stop requiring 2FA" in page
    response = root.post(f"/api/v1/users/{tina.pk}/two-factor/", {"required": False}, content_type="application/json")
    assert response.status_code == 200
    assert response.json() == {"required": False, "required_effective": False, "enabled": False, "locked_out": False}
    verbs = list(AuditEvent.objects.filter(target_id=str(tina.pk)).values_list("verb", flat=True))
    assert "user.two_factor.require" in verbs and "user.two_factor.unrequire" in verbs


@pytest.mark.django_db
def test_an_admin_sets_a_groups_requirement_through_the_api(world):
    team = Group.objects.create(name="team")
    root = Client()
    root.force_login(world.root)
    url = f"/api/v1/groups/{team.pk}/two-factor/"
    assert root.post(url, {"required": True}, content_type="application/json").json() == {"required": True}
    assert root.get(url).json() == {"required": True}
    assert root.post(f"/account/groups/{team.pk}/two-factor/", {"required": "0"}).status_code == 302
    assert not TwoFactorRequirement.objects.filter(group=team).exists()


@pytest.mark.django_db
def test_an_admin_resets_a_lost_phone_and_the_user_enrolls_again(world, tina):
    _require(world, tina)
    enroll(tina)
    root = Client()
    root.force_login(world.root)
    response = root.post(f"/api/v1/users/{tina.pk}/reset-two-factor/", content_type="application/json")
    assert response.status_code == 200
    assert response.json()["enabled"] is False
    assert not TotpDevice.objects.filter(user=tina).exists()
    assert AuditEvent.objects.filter(verb="user.two_factor.reset", target_id=str(tina.pk)).exists()
    client = Client()
    assert client.post("/login/", {"username": "tina", "password": PASSWORD})["Location"] == "/account/2fa/"


@pytest.mark.django_db
def test_only_managers_force_or_reset_2fa(world, tina):
    bob = Client()
    bob.force_login(world.bob)
    assert bob.post(f"/account/users/{tina.pk}/two-factor/", {"required": "1"}).status_code == 403
    assert bob.post(f"/api/v1/users/{tina.pk}/reset-two-factor/").status_code == 403
    assert not TwoFactorRequirement.objects.exists()


@pytest.mark.django_db
def test_a_manager_who_is_no_superuser_cannot_reset_a_superusers_2fa(world):
    from apps.accounts.services import grant_role

    grant_role(actor=world.root, role="Administrator", scope="/", user=world.oscar)
    enroll(world.root)
    with pytest.raises(services.AccessDenied):
        services.reset_two_factor(world.root, actor=world.oscar)
