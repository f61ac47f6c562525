"""Quotas on users and projects with the test:/// host: usage from the inventory plus active jobs'
reservations, refusals that name the limit and the usage, release on failure, and project scopes."""

import pytest

from apps.accounts.models import Project, Quota
from apps.accounts.permissions import has_privilege
from apps.accounts.quotas import Usage, current_usage, refuse_growth_over_quota
from apps.accounts.services import grant_role
from apps.core.errors import ServiceError
from apps.jobs import runner
from apps.jobs.choices import JobStatus
from apps.jobs.models import Job
from apps.storage.sync import sync_pools
from apps.vms import provisioning
from apps.vms.models import VirtualMachine

MIB = 1 << 20


@pytest.fixture
def world(world):
    sync_pools(world.host)
    return world


@pytest.fixture
def team(world) -> Project:
    """Project "team" where oscar (Operator on the host) may also create VMs."""
    project = Project.objects.create(name="team")
    grant_role(actor=world.root, role="Operator", scope=project.scope, user=world.oscar)
    return project


def params(name: str, **changes) -> dict:
    base = {
        "name": name,
        "os_variant": "debian12",
        "vcpus": 1,
        "max_vcpus": 1,
        "memory_mib": 512,
        "max_memory_mib": 512,
        "disk_pool": "default",
        "disk_size_bytes": 64 * MIB,
        "network": "isolated",
    }
    return {**base, **changes}


def test_usage_counts_the_owners_vms_from_the_inventory(world):
    owned = list(world.host.vms.order_by("pk")[:2])
    VirtualMachine.objects.filter(pk__in=[vm.pk for vm in owned]).update(owner=world.alice)
    usage = current_usage(user=world.alice)
    assert usage.vms == 2
    assert usage.vcpus == sum(vm.vcpus_max for vm in owned)
    assert usage.memory_mib == sum(vm.memory_max_kib for vm in owned) // 1024
    assert current_usage(user=world.bob) == Usage()


def test_the_third_create_in_a_project_of_two_vms_is_refused_naming_the_limit_and_the_usage(world, team):
    Quota.objects.create(project=team, max_vms=2)
    for name in ("q1", "q2"):
        job = provisioning.create_vm(world.host, params(name, project=team.pk), actor=world.oscar)
        assert job.params["reservation"] == {
            "user": world.oscar.pk,
            "project": team.pk,
            "vms": 1,
            "vcpus": 1,
            "memory_mib": 512,
            "disk_bytes": 64 * MIB,
        }
    with pytest.raises(ServiceError) as refused:
        provisioning.create_vm(world.host, params("q3", project=team.pk), actor=world.oscar)
    assert (refused.value.status, refused.value.code) == (409, "quota")
    assert refused.value.message == ("Quota exceeded for project team: VMs 2 of 2 used, this needs 1 more (limit 2).")
    assert Job.objects.count() == 2


def test_a_user_memory_quota_names_memory(world):
    Quota.objects.create(user=world.oscar, max_memory_mib=1024)
    provisioning.create_vm(world.host, params("m1", max_memory_mib=1024, memory_mib=1024), actor=world.oscar)
    with pytest.raises(ServiceError) as refused:
        provisioning.create_vm(world.host, params("m2"), actor=world.oscar)
    assert "user oscar: memory (MiB) 1024 of 1024 used, this needs 512 more" in refused.value.message


def test_a_disk_quota_is_counted_in_gib(world):
    Quota.objects.create(user=world.oscar, max_disk_gib=1)
    with pytest.raises(ServiceError) as refused:
        provisioning.create_vm(world.host, params("d1", disk_size_bytes=2 << 30), actor=world.oscar)
    assert "disk (GiB) 0 of 1 used, this needs 2 more (limit 1)" in refused.value.message


def test_a_failed_or_cancelled_job_releases_its_reservation(world, team):
    Quota.objects.create(project=team, max_vms=1)
    first = provisioning.create_vm(world.host, params("r1", project=team.pk), actor=world.oscar)
    with pytest.raises(ServiceError):
        provisioning.create_vm(world.host, params("r2", project=team.pk), actor=world.oscar)
    Job.objects.filter(pk=first.pk).update(status=JobStatus.FAILED)
    second = provisioning.create_vm(world.host, params("r2", project=team.pk), actor=world.oscar)
    Job.objects.filter(pk=second.pk).update(status=JobStatus.CANCELLED)
    assert current_usage(project=team) == Usage()
    provisioning.create_vm(world.host, params("r3", project=team.pk), actor=world.oscar)


def test_a_finished_create_puts_the_vm_in_its_project_and_counts_it_once(world, team):
    Quota.objects.create(project=team, max_vms=1)
    job = provisioning.create_vm(world.host, params("p1", project=team.pk), actor=world.oscar)
    assert runner.run_job(job.pk) == JobStatus.SUCCEEDED, [line.line for line in job.log_lines.all()]
    vm = VirtualMachine.objects.get(name="p1")
    assert vm.project == team and vm.owner == world.oscar
    usage = current_usage(project=team)
    assert (usage.vms, usage.vcpus, usage.memory_mib, usage.disk_bytes) == (1, 1, 512, 64 * MIB)
    with pytest.raises(ServiceError) as refused:
        provisioning.create_vm(world.host, params("p2", project=team.pk), actor=world.oscar)
    assert "VMs 1 of 1 used" in refused.value.message


def test_a_vm_being_made_counts_once_while_its_job_still_runs(world, team):
    job = provisioning.create_vm(world.host, params("p1", project=team.pk), actor=world.oscar)
    assert runner.run_job(job.pk) == JobStatus.SUCCEEDED
    vm = VirtualMachine.objects.get(name="p1")
    Job.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING, state={"uuid": vm.uuid})
    assert current_usage(project=team).vms == 1


def test_creating_in_a_project_needs_vm_create_there(world, team):
    with pytest.raises(ServiceError) as refused:
        provisioning.create_vm(world.host, params("x1", project=team.pk), actor=world.carol)
    assert refused.value.status in (403, 404)
    grant_role(actor=world.root, role="Viewer", scope=team.scope, user=world.carol)
    with pytest.raises(ServiceError):
        provisioning.create_vm(world.host, params("x1", project=team.pk), actor=world.carol)
    assert not Job.objects.exists()


def test_a_clone_counts_against_the_source_project(world, team):
    VirtualMachine.objects.filter(pk=world.vm.pk).update(project=team)
    world.vm.refresh_from_db()
    Quota.objects.create(project=team, max_vms=1)
    with pytest.raises(ServiceError) as refused:
        provisioning.clone_vm(world.vm, {}, actor=world.root)
    assert refused.value.code == "quota" and "project team: VMs 1 of 1 used" in refused.value.message


def test_a_grant_on_a_project_reaches_its_vms_and_only_them(world, team):
    in_project, outside = world.host.vms.exclude(pk__in=[world.vm.pk, world.running_vm.pk]).order_by("pk")[:2]
    VirtualMachine.objects.filter(pk=in_project.pk).update(project=team)
    in_project.refresh_from_db()
    grant_role(actor=world.root, role="VMUser", scope=team.scope, user=world.bob)
    assert has_privilege(world.bob, in_project, "vm.power")
    assert not has_privilege(world.bob, outside, "vm.view")
    visible = set(VirtualMachine.objects.restrict(world.bob, "vm.power", fresh=True).values_list("pk", flat=True))
    assert visible == {in_project.pk}
    grant_role(actor=world.root, role="NoAccess", scope=in_project.scope, user=world.bob)
    assert not has_privilege(world.bob, in_project, "vm.view", fresh=True)
    assert not VirtualMachine.objects.restrict(world.bob, "vm.view", fresh=True).exists()


def test_a_host_grant_still_reaches_vms_in_projects_unless_the_project_decides(world, team):
    VirtualMachine.objects.filter(pk=world.vm.pk).update(project=team)
    world.vm.refresh_from_db()
    assert has_privilege(world.carol, world.vm, "vm.view")  # Viewer on the host, nothing on the project
    assert world.vm in VirtualMachine.objects.restrict(world.carol, "vm.view")
    grant_role(actor=world.root, role="NoAccess", scope=team.scope, user=world.carol)
    assert not has_privilege(world.carol, world.vm, "vm.view", fresh=True)
    assert world.vm not in VirtualMachine.objects.restrict(world.carol, "vm.view", fresh=True)


def test_growing_or_adding_a_disk_past_the_owners_disk_quota_is_refused(world):
    from apps.vms import disks as disk_services

    VirtualMachine.objects.filter(pk=world.vm.pk).update(owner=world.alice)
    world.vm.refresh_from_db()
    Quota.objects.create(user=world.alice, max_disk_gib=1)
    with pytest.raises(ServiceError) as refused:
        disk_services.grow_disk(world.vm, "vda", 2 << 30, actor=world.alice)
    assert refused.value.code == "quota" and "user alice: disk (GiB)" in refused.value.message
    with pytest.raises(ServiceError) as refused:
        disk_services.attach_disk(
            world.vm, actor=world.alice, pool="default", name="big.qcow2", size_bytes=2 << 30, persistent=True
        )
    assert refused.value.code == "quota"
    (vda,) = disk_services.describe_disks(world.vm, actor=world.alice)
    assert vda.capacity_bytes < 2 << 30  # nothing grew
    refuse_growth_over_quota(world.vm, Usage(disk_bytes=1 << 20))  # a small disk still fits
