"""A token's privilege subset: effective = user's ∩ token's, enforced by the one gate."""

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.accounts.models import ApiToken
from apps.accounts.services import create_api_token
from apps.core.errors import ServiceError


def api(secret: str, path: str, method: str = "get", **data):
    return getattr(Client(), method)(path, data, content_type="application/json", HTTP_AUTHORIZATION=f"Token {secret}")


def test_a_token_limited_to_vm_view_cannot_start_a_vm_its_user_can_start(world):
    _token, limited = create_api_token(actor=world.root, user=world.alice, privileges=["vm.view"])
    _token, unlimited = create_api_token(actor=world.root, user=world.alice)
    start = reverse("vm-start", args=[world.vm.pk])
    assert api(limited, reverse("vm-detail", args=[world.vm.pk])).status_code == 200
    refused = api(limited, start, "post")
    assert refused.status_code == 403
    assert "detail" in refused.json()
    world.vm.refresh_from_db()
    assert world.vm.state == "shutoff"
    started = api(unlimited, start, "post")
    assert started.status_code == 200
    assert started.json()["state"] == "running"


def test_a_token_without_vm_view_sees_no_vm_at_all(world):
    _token, secret = create_api_token(actor=world.root, user=world.alice, privileges=["vm.power"])
    assert api(secret, reverse("vm-list")).json()["count"] == 0
    assert api(secret, reverse("vm-start", args=[world.vm.pk]), "post").status_code == 404


def test_a_superusers_limited_token_is_limited_too(world):
    _token, secret = create_api_token(actor=world.root, user=world.root, privileges=["vm.view"])
    assert api(secret, reverse("vm-start", args=[world.vm.pk]), "post").status_code == 403


def test_the_same_user_in_a_browser_session_keeps_all_their_privileges(world):
    create_api_token(actor=world.root, user=world.alice, privileges=["vm.view"])
    client = Client()
    client.force_login(world.alice)
    response = client.post(reverse("vm-start", args=[world.vm.pk]), content_type="application/json")
    assert response.status_code == 200


def test_it_refuses_unknown_privileges_and_privileges_the_user_holds_nowhere(world):
    with pytest.raises(ServiceError, match=r"Unknown privileges: vm\.fly") as unknown:
        create_api_token(actor=world.alice, user=world.alice, privileges=["vm.fly"])
    assert unknown.value.status == 400
    with pytest.raises(ServiceError, match=r"host\.manage") as not_held:
        create_api_token(actor=world.alice, user=world.alice, privileges=["host.manage"])
    assert not_held.value.status == 400
    assert not ApiToken.objects.exists()


def test_it_refuses_an_expiry_in_the_past(world):
    with pytest.raises(ServiceError, match="future"):
        create_api_token(actor=world.alice, user=world.alice, expires_at=timezone.now() - timedelta(minutes=1))


def test_a_tokens_limit_also_guards_jobs(world):
    _token, view_only = create_api_token(actor=world.root, user=world.alice, privileges=["vm.view"])
    _token, snapshots = create_api_token(actor=world.root, user=world.alice, privileges=["vm.view", "vm.snapshot"])
    url = reverse("vm-snapshot-list", args=[world.vm.pk])
    assert api(view_only, url, "post", name="by-token").status_code == 403
    assert api(snapshots, url, "post", name="by-token").status_code == 202
