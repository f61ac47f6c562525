"""The projects and quota API: managers create projects and set quotas, usage shows against limits,
and a create request over the quota is a 409 naming the limit and the usage."""

import pytest
from django.test import Client
from django.urls import reverse

from apps.accounts.models import Project, Quota
from apps.accounts.services import grant_role
from apps.audit.models import AuditEvent
from apps.storage.sync import sync_pools

MIB = 1 << 20


def session(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def post(user, url: str, data: dict):
    return session(user).post(url, data, content_type="application/json")


def test_a_manager_creates_a_project_and_sets_its_quota_and_sees_usage(world):
    created = post(world.root, reverse("project-list"), {"name": "team", "description": "the team"})
    assert created.status_code == 201, created.content
    project = Project.objects.get(pk=created.json()["id"])
    answer = post(world.root, reverse("project-quota", args=[project.pk]), {"max_vms": 2, "max_memory_mib": 1024})
    assert answer.status_code == 200, answer.content
    assert answer.json()["limits"] == {"max_vms": 2, "max_vcpus": None, "max_memory_mib": 1024, "max_disk_gib": None}
    assert answer.json()["usage"]["vms"] == 0
    assert session(world.root).get(reverse("project-usage", args=[project.pk])).json() == answer.json()
    assert AuditEvent.objects.filter(verb="quota.set", target_id=str(project.pk)).exists()
    assert AuditEvent.objects.filter(verb="project.create", target_id=str(project.pk)).exists()


def test_a_project_name_is_unique_and_needs_user_manage(world):
    assert post(world.root, reverse("project-list"), {"name": "team"}).status_code == 201
    twice = post(world.root, reverse("project-list"), {"name": "team"})
    assert twice.status_code in (400, 409)
    assert post(world.oscar, reverse("project-list"), {"name": "other"}).status_code == 403


def test_members_see_their_project_and_not_others(world):
    mine, theirs = Project.objects.create(name="mine"), Project.objects.create(name="theirs")
    grant_role(actor=world.root, role="VMUser", scope=mine.scope, user=world.bob)
    listed = session(world.bob).get(reverse("project-list")).json()["results"]
    assert [row["name"] for row in listed] == ["mine"]
    assert session(world.bob).get(reverse("project-detail", args=[theirs.pk])).status_code == 404
    renamed = session(world.bob).patch(
        reverse("project-detail", args=[mine.pk]), {"name": "x"}, content_type="application/json"
    )
    assert renamed.status_code == 403


def test_a_user_reads_their_own_quota_and_a_manager_sets_it(world):
    assert post(world.root, reverse("user-quota", args=[world.bob.pk]), {"max_vcpus": 4}).status_code == 200
    mine = session(world.bob).get(reverse("user-quota", args=[world.bob.pk]))
    assert mine.status_code == 200 and mine.json()["limits"]["max_vcpus"] == 4
    assert post(world.bob, reverse("user-quota", args=[world.bob.pk]), {"max_vcpus": 99}).status_code == 403
    assert Quota.objects.get(user=world.bob).max_vcpus == 4
    assert post(world.root, reverse("user-quota", args=[world.bob.pk]), {"max_vcpus": -1}).status_code == 400


@pytest.mark.parametrize("limit", [1])
def test_the_api_refuses_a_create_over_the_quota_with_409_naming_limit_and_usage(world, limit):
    sync_pools(world.host)
    project = Project.objects.create(name="team")
    grant_role(actor=world.root, role="Operator", scope=project.scope, user=world.oscar)
    Quota.objects.create(project=project, max_vms=limit)
    body = {
        "host": world.host.pk,
        "disk_pool": "default",
        "disk_size_bytes": 64 * MIB,
        "vcpus": 1,
        "max_vcpus": 1,
        "memory_mib": 256,
        "max_memory_mib": 256,
        "project": project.pk,
    }
    first = post(world.oscar, reverse("vm-list"), {**body, "name": "a1"})
    assert first.status_code == 202, first.content
    second = post(world.oscar, reverse("vm-list"), {**body, "name": "a2"})
    assert second.status_code == 409
    assert second.json()["detail"] == "Quota exceeded for project team: VMs 1 of 1 used, this needs 1 more (limit 1)."
    usage = session(world.oscar).get(reverse("project-usage", args=[project.pk])).json()
    assert usage["usage"]["vms"] == 1 and usage["limits"]["max_vms"] == 1


def test_the_quota_page_shows_usage_against_limits_to_managers_only(world):
    project = Project.objects.create(name="team")
    Quota.objects.create(project=project, max_vms=2, max_memory_mib=1024)
    Quota.objects.create(user=world.bob, max_vcpus=4)
    page = session(world.root).get(reverse("account-quotas"))
    assert page.status_code == 200
    text = page.content.decode()
    assert "team" in text and "0 / 2" in text and "0 / 1024" in text and "0 / 4" in text and "bob" in text
    assert session(world.oscar).get(reverse("account-quotas")).status_code == 403
