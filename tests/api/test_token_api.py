"""`/api/v1/tokens/`: own tokens only, the secret once, never the digest, revoke, no escalation."""

from datetime import timedelta

from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.accounts.models import ApiToken
from apps.accounts.services import create_api_token
from apps.audit.models import AuditEvent


def session(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def with_token(secret: str, path: str, method: str = "get", data=None):
    return getattr(Client(), method)(
        path, data or {}, content_type="application/json", HTTP_AUTHORIZATION=f"Token {secret}"
    )


def test_it_creates_a_token_and_shows_the_secret_once(world):
    response = session(world.alice).post(
        reverse("token-list"), {"name": "ci", "privileges": ["vm.view"]}, content_type="application/json"
    )
    assert response.status_code == 201
    body = response.json()
    assert body["secret"].startswith("kvp_") and body["privileges"] == ["vm.view"] and "digest" not in body
    listed = session(world.alice).get(reverse("token-list")).json()["results"]
    assert [row["name"] for row in listed] == ["ci"]
    assert "secret" not in listed[0] and "digest" not in listed[0]
    assert AuditEvent.objects.filter(verb="token.create").exists()


def test_the_database_holds_no_token_secret_or_password_in_clear(world):
    _token, secret = create_api_token(actor=world.root, user=world.alice, privileges=["vm.view"])
    with_token(secret, reverse("vm-list"))
    with connection.cursor() as cursor:
        tables = connection.introspection.table_names(cursor)
        for table in tables:
            cursor.execute(f'SELECT * FROM "{table}"')  # noqa: S608 - table names come from introspection
            for row in cursor.fetchall():
                text = " ".join(str(value) for value in row)
                assert secret not in text, table
                assert secret[len("kvp_") :] not in text, table
                assert "correct horse battery staple" not in text, table


def test_a_limited_token_cannot_mint_a_broader_token(world):
    _token, limited = create_api_token(actor=world.root, user=world.alice, privileges=["vm.view"])
    broader = with_token(limited, reverse("token-list"), "post", {"privileges": ["vm.view", "vm.power"]})
    assert broader.status_code == 403
    assert "detail" in broader.json()
    unlimited_asked = with_token(limited, reverse("token-list"), "post", {"name": "child"})
    assert unlimited_asked.status_code == 201
    assert unlimited_asked.json()["privileges"] == ["vm.view"]


def test_it_refuses_unknown_privileges_and_ones_the_user_lacks(world):
    unknown = session(world.alice).post(
        reverse("token-list"), {"privileges": ["vm.fly"]}, content_type="application/json"
    )
    assert unknown.status_code == 400
    lacking = session(world.alice).post(
        reverse("token-list"), {"privileges": ["user.manage"]}, content_type="application/json"
    )
    assert lacking.status_code == 400
    assert not ApiToken.objects.exists()


def test_only_a_user_manager_creates_tokens_for_someone_else(world):
    refused = session(world.bob).post(reverse("token-list"), {"user": world.alice.pk}, content_type="application/json")
    assert refused.status_code == 403
    nobody = session(world.bob).post(reverse("token-list"), {"user": 999999}, content_type="application/json")
    assert nobody.status_code == 403  # the same answer whether the user exists or not
    made = session(world.root).post(reverse("token-list"), {"user": world.alice.pk}, content_type="application/json")
    assert made.status_code == 201
    assert made.json()["username"] == "alice"


def test_bob_can_neither_see_nor_revoke_alices_tokens(world):
    token, secret = create_api_token(actor=world.alice, user=world.alice)
    bob = session(world.bob)
    assert bob.get(reverse("token-list")).json()["count"] == 0
    assert bob.get(reverse("token-list") + f"?user={world.alice.pk}").json()["count"] == 0
    assert bob.get(reverse("token-detail", args=[token.pk])).status_code == 404
    assert bob.post(reverse("token-revoke", args=[token.pk])).status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None
    assert with_token(secret, reverse("vm-list")).status_code == 200


def test_a_user_manager_may_list_and_revoke_someone_elses_tokens(world):
    token, _secret = create_api_token(actor=world.alice, user=world.alice)
    root = session(world.root)
    assert root.get(reverse("token-list") + f"?user={world.alice.pk}").json()["count"] == 1
    assert root.post(reverse("token-revoke", args=[token.pk])).status_code == 200


def test_a_revoked_token_is_refused(world):
    token, secret = create_api_token(actor=world.alice, user=world.alice)
    response = session(world.alice).post(reverse("token-revoke", args=[token.pk]))
    assert response.status_code == 200
    assert response.json()["revoked_at"] is not None
    assert with_token(secret, reverse("vm-list")).status_code == 401
    assert AuditEvent.objects.filter(verb="token.revoke").count() == 1


def test_an_expired_token_is_refused(world):
    token, secret = create_api_token(actor=world.alice, user=world.alice, expires_at=timezone.now() + timedelta(1))
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert with_token(secret, reverse("vm-list")).status_code == 401


def test_revoke_refuses_get(world):
    token, _secret = create_api_token(actor=world.alice, user=world.alice)
    assert session(world.alice).get(reverse("token-revoke", args=[token.pk])).status_code == 405


def test_last_use_is_written_at_most_once_a_minute(world):
    token, secret = create_api_token(actor=world.alice, user=world.alice)
    recent = timezone.now() - timedelta(seconds=30)
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=recent)
    with_token(secret, reverse("vm-list"))
    token.refresh_from_db()
    assert token.last_used_at == recent
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now() - timedelta(minutes=2))
    with_token(secret, reverse("vm-list"))
    token.refresh_from_db()
    assert timezone.now() - token.last_used_at < timedelta(seconds=5)
