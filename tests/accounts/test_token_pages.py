"""`/account/tokens/`: list, create with the secret shown once, revoke by POST, others' tokens 404."""

from django.test import Client
from django.urls import reverse

from apps.accounts.models import ApiToken, token_digest
from apps.accounts.services import create_api_token


def session(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_page_creates_a_limited_token_and_shows_its_secret_once(world):
    client = session(world.alice)
    form = client.get(reverse("account-tokens")).content.decode()
    assert 'value="vm.power"' in form and 'value="user.manage"' not in form  # only what alice holds
    response = client.post(
        reverse("account-tokens"), {"name": "backup", "expires_on": "2099-01-31", "privileges": ["vm.view"]}
    )
    assert response.status_code == 200
    token = ApiToken.objects.get(user=world.alice)
    assert token.privileges == ["vm.view"] and token.expires_at.year == 2099
    secret = response.context["secret"]
    assert token.digest == token_digest(secret) and secret in response.content.decode()
    assert response["Cache-Control"] == "no-store"
    assert secret not in client.get(reverse("account-tokens")).content.decode()


def test_the_page_refuses_a_date_in_the_past(world):
    response = session(world.alice).post(reverse("account-tokens"), {"expires_on": "2001-01-01"})
    assert response.status_code == 400
    assert not ApiToken.objects.exists()


def test_the_page_revokes_by_post_only_and_only_ones_own(world):
    token, _secret = create_api_token(actor=world.alice, user=world.alice)
    assert session(world.alice).get(reverse("account-token-revoke", args=[token.pk])).status_code == 405
    assert session(world.bob).post(reverse("account-token-revoke", args=[token.pk])).status_code == 404
    response = session(world.alice).post(reverse("account-token-revoke", args=[token.pk]))
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None


def test_revoking_needs_a_csrf_token(world):
    token, _secret = create_api_token(actor=world.alice, user=world.alice)
    client = Client(enforce_csrf_checks=True)
    client.force_login(world.alice)
    assert client.post(reverse("account-token-revoke", args=[token.pk])).status_code == 403
