"""Snapshots on libvirt's test:/// driver: the tree, the jobs, and the refusals (raw disks, names)."""

import pytest

from apps.audit.models import AuditEvent
from apps.core.errors import AccessDenied, ServiceError
from apps.jobs import runner
from apps.jobs.choices import JobStatus
from apps.jobs.models import Job
from apps.vms import snapshots as snapshot_services
from kvmpanel.virt import disks, domain
from kvmpanel.virt import snapshots as virt_snapshots

BAD_NAMES = ["a/b", "..", "a..b", "<x>", "a&b", "x" * 64, "x" * 300, "snäp", "", " lead", "-dash"]


def names_on_host(vm) -> list[str]:
    return [snapshot.name for snapshot in virt_snapshots.list_snapshots(vm.host.uri, vm.uuid)]


def run(job) -> Job:
    """Run a queued job in this process (the worker's code path, without a worker)."""
    runner.run_job(job.pk)
    job.refresh_from_db()
    return job


def test_the_list_is_a_tree_with_the_current_snapshot_marked(world):
    uri, uuid = world.host.uri, world.vm.uuid
    virt_snapshots.create_snapshot(uri, uuid, "base", "first one")
    virt_snapshots.create_snapshot(uri, uuid, "child-a")
    virt_snapshots.revert_snapshot(uri, uuid, "base")
    virt_snapshots.create_snapshot(uri, uuid, "child-b")
    virt_snapshots.create_snapshot(uri, uuid, "grandchild")
    tree = snapshot_services.list_snapshots(world.vm, actor=world.alice)
    assert [(s.name, s.depth, s.parent) for s in tree] == [
        ("base", 0, ""),
        ("child-a", 1, "base"),
        ("child-b", 1, "base"),
        ("grandchild", 2, "child-b"),
    ]
    assert [s.name for s in tree if s.current] == ["grandchild"]
    assert tree[0].children == ("child-a", "child-b") and tree[0].description == "first one"
    assert not tree[0].memory and tree[0].state == "shutoff" and not tree[0].external


def test_deleting_a_snapshot_gives_its_children_to_its_parent(world):
    uri, uuid = world.host.uri, world.vm.uuid
    for name in ("one", "two", "three"):
        virt_snapshots.create_snapshot(uri, uuid, name)
    virt_snapshots.delete_snapshot(uri, uuid, "two")
    assert [(s.name, s.parent) for s in virt_snapshots.list_snapshots(uri, uuid)] == [("one", ""), ("three", "one")]


def test_a_running_vm_is_snapshotted_with_its_memory(world):
    snapshot = virt_snapshots.create_snapshot(world.host.uri, world.running_vm.uuid, "live")
    assert snapshot.memory and snapshot.state == "running"


def test_the_snapshot_xml_never_asks_for_an_external_snapshot():
    listed = disks.parse_disks(
        "<domain><devices><disk device='disk'><driver type='qcow2'/><source file='/p/a'/><target dev='vda'/></disk>"
        "<disk device='cdrom'><target dev='hdc'/><readonly/></disk></devices></domain>"
    )
    xml_text = virt_snapshots.snapshot_xml("s", "", listed, with_memory=True)
    assert "external" not in xml_text
    assert '<disk name="vda" snapshot="internal" />' in xml_text
    assert '<disk name="hdc" snapshot="no" />' in xml_text


def test_create_revert_and_delete_run_as_jobs(world):
    vm = world.vm
    job = snapshot_services.create_snapshot(vm, actor=world.alice, name="before-upgrade", description="safe point")
    assert (job.kind, job.params["command"]) == (
        "vm.snapshot.create",
        "virsh snapshot-create-as vm0002 before-upgrade --description 'safe point'",
    )
    assert run(job).status == JobStatus.SUCCEEDED
    assert names_on_host(vm) == ["before-upgrade"]

    domain.start(vm.host.uri, vm.uuid)
    job = run(snapshot_services.revert_snapshot(vm, "before-upgrade", actor=world.alice))
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert domain.get_domain(vm.host.uri, vm.uuid).state == "shutoff"  # taken shut off: reverted shut off
    vm.refresh_from_db()
    assert vm.state == "shutoff"  # the inventory row followed

    job = run(snapshot_services.delete_snapshot(vm, "before-upgrade", actor=world.alice))
    assert job.status == JobStatus.SUCCEEDED
    assert names_on_host(vm) == []
    verbs = set(AuditEvent.objects.filter(result="ok").values_list("verb", flat=True))
    assert {"vm.snapshot.create", "vm.snapshot.revert", "vm.snapshot.delete"} <= verbs


def test_a_snapshot_taken_while_running_reverts_to_a_running_vm(world):
    vm = world.running_vm
    assert run(snapshot_services.create_snapshot(vm, actor=world.oscar, name="up")).status == JobStatus.SUCCEEDED
    domain.force_off(vm.host.uri, vm.uuid)
    assert run(snapshot_services.revert_snapshot(vm, "up", actor=world.oscar)).status == JobStatus.SUCCEEDED
    assert domain.get_domain(vm.host.uri, vm.uuid).state == "running"


def test_it_refuses_a_vm_with_a_raw_disk_and_says_what_to_do(world):
    disks.repoint(world.host.uri, world.vm.uuid, "vda", "/pool/vm0002.qcow2", "raw")
    with pytest.raises(ServiceError) as refused:
        snapshot_services.create_snapshot(world.vm, actor=world.alice, name="nope")
    assert refused.value.status == 409 and refused.value.code == "raw-disk"
    assert "convert disk vda (raw) to qcow2 first" in refused.value.message
    assert names_on_host(world.vm) == [] and not Job.objects.exists()
    assert AuditEvent.objects.get(verb="vm.snapshot.create").result == "refused"
    # The virt layer refuses too, should anything call it directly.
    with pytest.raises(virt_snapshots.HypervisorError, match="qcow2"):
        virt_snapshots.create_snapshot(world.host.uri, world.vm.uuid, "nope")
    assert names_on_host(world.vm) == []


@pytest.mark.parametrize("name", BAD_NAMES)
def test_it_refuses_bad_names_and_makes_nothing(world, name):
    with pytest.raises(ServiceError) as refused:
        snapshot_services.create_snapshot(world.vm, actor=world.alice, name=name)
    assert refused.value.status == 400 and refused.value.code == "invalid-name"
    assert names_on_host(world.vm) == []


def test_it_refuses_a_name_the_vm_already_has_and_an_overlong_description(world):
    virt_snapshots.create_snapshot(world.host.uri, world.vm.uuid, "taken")
    with pytest.raises(ServiceError, match="already has a snapshot"):
        snapshot_services.create_snapshot(world.vm, actor=world.alice, name="taken")
    with pytest.raises(ServiceError, match="at most 1000"):
        snapshot_services.create_snapshot(world.vm, actor=world.alice, name="other", description="d" * 1001)
    assert names_on_host(world.vm) == ["taken"]


def test_reverting_or_deleting_a_snapshot_that_does_not_exist_is_a_clear_404(world):
    for attempt in (snapshot_services.revert_snapshot, snapshot_services.delete_snapshot):
        with pytest.raises(ServiceError, match="no snapshot named ghost") as refused:
            attempt(world.vm, "ghost", actor=world.alice)
        assert refused.value.status == 404


def test_rollback_needs_its_own_privilege(world):
    from apps.accounts.models import Role
    from apps.accounts.services import grant_role

    virt_snapshots.create_snapshot(world.host.uri, world.vm.uuid, "s1")
    role = Role.objects.create(name="SnapOnly", privileges=["vm.view", "vm.snapshot"])
    grant_role(actor=world.root, role=role, scope=world.vm.scope, user=world.bob)
    job = snapshot_services.create_snapshot(world.vm, actor=world.bob, name="s2")
    assert job.kind == "vm.snapshot.create"
    job.delete()
    with pytest.raises(AccessDenied):
        snapshot_services.revert_snapshot(world.vm, "s1", actor=world.bob)
    with pytest.raises(AccessDenied):
        snapshot_services.create_snapshot(world.vm, actor=world.carol, name="s3")
