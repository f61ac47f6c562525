"""`/account/projects/` and `/account/projects/<id>/`: list with usage, create, quota, placement, VMs, delete."""

import pytest
from django.test import Client
from django.urls import reverse

from apps.accounts.models import Grant, Project, Quota
from apps.accounts.services import grant_role
from apps.audit.models import AuditEvent


def session(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def team(world):
    """Project "team" holding alice's VM vm0002; carol may look at it (Viewer on it), bob may not."""
    project = Project.objects.create(name="team", description="the team's VMs")
    world.vm.project = project
    world.vm.save(update_fields=["project"])
    grant_role(actor=world.root, role="Viewer", scope=project.scope, user=world.carol)
    return project


def test_a_manager_creates_a_project_and_lands_on_its_page(world):
    response = session(world.root).post(reverse("account-projects"), {"name": "lab", "description": "tests"})
    project = Project.objects.get(name="lab")
    assert response.status_code == 302 and response["Location"] == reverse("account-project", args=[project.pk])
    assert AuditEvent.objects.filter(verb="project.create", target_id=str(project.pk)).exists()
    listing = session(world.root).get(reverse("account-projects")).content.decode()
    assert "lab" in listing and "0 / ∞" in listing


def test_creating_a_project_needs_user_manage_and_a_duplicate_name_is_409(world, team):
    assert session(world.carol).post(reverse("account-projects"), {"name": "mine"}).status_code == 403
    assert not Project.objects.filter(name="mine").exists()
    assert session(world.root).post(reverse("account-projects"), {"name": "team"}).status_code == 409
    assert session(world.root).post(reverse("account-projects"), {"name": ""}).status_code == 400


def test_the_list_shows_only_the_projects_one_may_see_with_usage_against_quota(world, team):
    Quota.objects.create(project=team, max_vms=2)
    Project.objects.create(name="secret-project")
    carol = session(world.carol).get(reverse("account-projects")).content.decode()
    assert f'data-project-id="{team.pk}"' in carol and "secret-project" not in carol and "1 / 2" in carol
    assert 'id="project-create"' not in carol
    bob = session(world.bob).get(reverse("account-projects")).content.decode()
    assert f'data-project-id="{team.pk}"' not in bob and "No projects to show." in bob


def test_the_project_page_is_404_unless_visible_and_read_only_without_user_manage(world, team):
    url = reverse("account-project", args=[team.pk])
    assert session(world.bob).get(url).status_code == 404
    carol = session(world.carol).get(url)
    assert carol.status_code == 200
    html = carol.content.decode()
    assert "vm0002" in html and "Viewer" in html
    assert 'id="quota-form"' not in html and 'id="project-delete"' not in html and 'id="object-tabs"' not in html
    root = session(world.root).get(url).content.decode()
    assert 'id="quota-form"' in root and 'id="placement-form"' in root and 'id="object-tabs"' in root


def test_a_manager_sets_the_quota_and_others_are_refused(world, team):
    url = reverse("account-project-quota", args=[team.pk])
    limits = {"max_vms": "2", "max_vcpus": "4", "max_memory_mib": "", "max_disk_gib": "10"}
    assert session(world.bob).post(url, limits).status_code == 404
    assert session(world.carol).post(url, limits).status_code == 403
    assert session(world.root).post(url, limits).status_code == 302
    quota = Quota.objects.get(project=team)
    assert (quota.max_vms, quota.max_vcpus, quota.max_memory_mib, quota.max_disk_gib) == (2, 4, None, 10)
    assert "1 / 2" in session(world.root).get(reverse("account-project", args=[team.pk])).content.decode()
    assert session(world.root).post(url, limits | {"max_vms": "-1"}).status_code == 400


def test_a_manager_sets_the_placement(world, team):
    url = reverse("account-project-hosts", args=[team.pk])
    assert session(world.carol).post(url, {"hosts": [world.host.pk]}).status_code == 403
    assert session(world.root).post(url, {"hosts": [world.host.pk]}).status_code == 302
    assert list(team.hosts.all()) == [world.host]
    assert AuditEvent.objects.filter(verb="project.hosts", target_id=str(team.pk)).exists()
    assert session(world.root).post(url, {}).status_code == 302
    assert not team.hosts.exists()


def test_a_manager_renames_a_project(world, team):
    url = reverse("account-project-edit", args=[team.pk])
    assert session(world.carol).post(url, {"name": "ours"}).status_code == 403
    assert session(world.root).post(url, {"name": "ours", "description": ""}).status_code == 302
    team.refresh_from_db()
    assert team.name == "ours"


def test_only_an_empty_project_is_deleted_with_its_grants(world, team):
    url = reverse("account-project-delete", args=[team.pk])
    assert session(world.carol).post(url).status_code == 403
    refused = session(world.root).post(url, follow=True)
    assert "still has VMs" in refused.content.decode()
    assert Project.objects.filter(pk=team.pk).exists()
    world.vm.project = None
    world.vm.save(update_fields=["project"])
    assert session(world.root).post(url).status_code == 302
    assert not Project.objects.filter(pk=team.pk).exists()
    assert not Grant.objects.filter(scope=team.scope).exists()
    assert AuditEvent.objects.filter(verb="project.delete", target_id=str(team.pk)).exists()


def test_state_changes_refuse_get(world, team):
    for name in ("account-project-edit", "account-project-quota", "account-project-hosts", "account-project-delete"):
        assert session(world.root).get(reverse(name, args=[team.pk])).status_code == 405
