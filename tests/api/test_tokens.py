"""API tokens: shown once, stored hashed, usable, expiring, revocable."""

from datetime import timedelta
from io import StringIO

from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.accounts.models import ApiToken, token_digest
from apps.accounts.services import create_api_token


def api(secret: str | None, path: str = "/api/v1/vms/", method: str = "get"):
    headers = {"HTTP_AUTHORIZATION": f"Token {secret}"} if secret else {}
    return getattr(Client(), method)(path, **headers)


def test_the_command_prints_a_token_once_and_stores_only_its_digest(world):
    out = StringIO()
    call_command("create_api_token", "alice", stdout=out)
    secret = out.getvalue().strip()
    assert secret.startswith("kvp_") and len(secret) > 40
    token = ApiToken.objects.get(user=world.alice)
    assert token.digest == token_digest(secret)
    assert secret not in {token.prefix, token.digest, token.name}


def test_a_token_authenticates_as_its_user_and_sees_what_the_user_sees(world):
    _token, secret = create_api_token(actor=world.root, user=world.alice)
    body = api(secret).json()
    assert {row["name"] for row in body["results"]} == {"vm0000", "vm0002"}


def test_a_token_can_run_actions_without_a_csrf_token(world):
    _token, secret = create_api_token(actor=world.root, user=world.alice)
    response = api(secret, reverse("vm-start", args=[world.vm.pk]), method="post")
    assert response.status_code == 200
    assert response.json()["state"] == "running"


def test_it_refuses_an_unknown_expired_or_revoked_token(world):
    assert api("kvp_not-a-real-token").status_code == 401
    token, secret = create_api_token(actor=world.root, user=world.alice, expires_at=timezone.now() + timedelta(1))
    assert api(secret).status_code == 200
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))  # time passes
    assert api(secret).status_code == 401
    token, secret = create_api_token(actor=world.root, user=world.alice)
    token.revoked_at = timezone.now()
    token.save()
    response = api(secret)
    assert response.status_code == 401
    assert "detail" in response.json()


def test_a_disabled_users_tokens_stop_working(world):
    _token, secret = create_api_token(actor=world.root, user=world.alice)
    world.alice.is_active = False
    world.alice.save()
    assert api(secret).status_code == 401


def test_it_records_when_a_token_was_last_used(world):
    token, secret = create_api_token(actor=world.root, user=world.alice)
    api(secret)
    token.refresh_from_db()
    assert token.last_used_at is not None


def test_the_command_refuses_an_unknown_user(db):
    import pytest
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="No user named"):
        call_command("create_api_token", "nobody")


def test_a_token_user_gets_answers_in_their_language(world):
    world.alice.language = "zh-hans"
    world.alice.save()
    _token, secret = create_api_token(actor=world.root, user=world.alice)
    response = api(secret, reverse("vm-start", args=[world.running_vm.pk]), method="post")
    assert response.status_code == 409
    assert response.json()["detail"] == "虚拟机已在运行。"
