"""Placement: members holding vm.create on a project (VMUser) create its VMs on the hosts the project
is placed on, without any grant on those hosts — and nowhere else, and never outside the project."""

import pytest
from django.test import Client
from django.urls import reverse

from apps.accounts.models import Project
from apps.accounts.projects import creatable_hosts, set_project_hosts
from apps.accounts.services import grant_role
from apps.audit.models import AuditEvent
from apps.core.errors import AccessDenied
from apps.hosts.models import Host
from apps.storage.sync import sync_pools

MIB = 1 << 20


def session(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def create_body(world, project, name: str) -> dict:
    body = {"host": world.host.pk, "name": name, "disk_pool": "default", "disk_size_bytes": 64 * MIB}
    if project is not None:
        body["project"] = project.pk
    return body


@pytest.fixture
def team(world):
    """Project "team" placed on the test host; bob (no grant anywhere else) is a VMUser in it."""
    sync_pools(world.host)
    project = Project.objects.create(name="team")
    set_project_hosts(project, [world.host], actor=world.root)
    grant_role(actor=world.root, role="VMUser", scope=project.scope, user=world.bob)
    return project


def test_a_project_member_creates_a_vm_on_the_projects_host_without_a_host_grant(world, team):
    answer = session(world.bob).post(
        reverse("vm-list"), create_body(world, team, "b1"), content_type="application/json"
    )
    assert answer.status_code == 202, answer.content
    assert answer.json()["job"]["params"]["reservation"]["project"] == team.pk
    assert list(creatable_hosts(world.bob)) == [world.host]


def test_a_project_member_may_not_create_outside_the_project(world, team):
    answer = session(world.bob).post(
        reverse("vm-list"), create_body(world, None, "b2"), content_type="application/json"
    )
    assert answer.status_code == 403, answer.content
    assert "detail" in answer.json()
    assert AuditEvent.objects.filter(verb="vm.create", result="denied", actor=world.bob).exists()


def test_a_host_outside_the_placement_stays_invisible_to_a_project_member(world, team):
    other = Host.objects.create(name="elsewhere", uri="test:///default")
    body = {**create_body(world, team, "b3"), "host": other.pk}
    answer = session(world.bob).post(reverse("vm-list"), body, content_type="application/json")
    assert answer.status_code == 404
    assert list(creatable_hosts(world.bob)) == [world.host]


def test_a_refusal_in_a_project_without_vm_create_is_audited(world, team):
    viewers_only = Project.objects.create(name="viewers")
    set_project_hosts(viewers_only, [world.host], actor=world.root)
    grant_role(actor=world.root, role="Viewer", scope=viewers_only.scope, user=world.oscar)
    answer = session(world.oscar).post(
        reverse("vm-list"), create_body(world, viewers_only, "o1"), content_type="application/json"
    )
    assert answer.status_code == 403
    assert answer.json()["detail"] == "You may not create VMs in project viewers."
    event = AuditEvent.objects.get(verb="vm.create", result="denied", actor=world.oscar)
    assert event.detail["project"] == viewers_only.pk


def test_the_wizard_offers_only_the_members_projects_and_requires_one(world, team):
    page = session(world.bob).get(reverse("vms:create"))
    assert page.status_code == 200
    form = page.context["form"]
    assert form.fields["project"].required
    assert form.fields["project"].choices == [(str(team.pk), "team")]


def test_an_operator_on_the_host_may_create_a_personal_vm_or_one_in_a_project(world, team):
    grant_role(actor=world.root, role="VMUser", scope=team.scope, user=world.oscar)
    form = session(world.oscar).get(reverse("vms:create")).context["form"]
    assert not form.fields["project"].required
    assert form.fields["project"].choices[0][0] == ""


def test_only_user_managers_set_a_projects_placement(world, team):
    with pytest.raises(AccessDenied):
        set_project_hosts(team, [], actor=world.bob)
    answer = session(world.root).post(
        reverse("project-hosts", args=[team.pk]), {"hosts": [world.host.pk, 99999]}, content_type="application/json"
    )
    assert answer.status_code == 400
    assert list(team.hosts.all()) == [world.host]
    cleared = session(world.root).post(
        reverse("project-hosts", args=[team.pk]), {"hosts": []}, content_type="application/json"
    )
    assert cleared.status_code == 200 and cleared.json()["hosts"] == []
    assert AuditEvent.objects.filter(verb="project.hosts", target_id=str(team.pk)).count() == 2
