"""Disk services on libvirt's test:/// driver: validation, refusals that change nothing, jobs queued.

The test driver has pools and volumes but no hot-plug, so attaching and detaching themselves are
proven on the lab (tests/vms/test_disks_lab.py); here every refusal is, because each must come
before the hypervisor is asked and leave the host as it was.
"""

import xml.etree.ElementTree as ET

import pytest

from apps.audit.models import AuditEvent
from apps.core.errors import AccessDenied, ServiceError
from apps.jobs import runner
from apps.jobs.choices import JobStatus
from apps.jobs.models import Job
from apps.storage.sync import sync_pools
from apps.vms import disks as disk_services
from kvmpanel.virt import disks, domain
from kvmpanel.virt import host as virt_host
from kvmpanel.virt import snapshots as virt_snapshots
from kvmpanel.virt.connection import call

BAD_NAMES = ["a/b.qcow2", "../escape.qcow2", "x..y.qcow2", "<disk>.qcow2", "a'b\".qcow2", "x" * 300, "dïsk.qcow2", ""]


def pool_volumes(host) -> set[str]:
    return set(call(host.uri, lambda conn: conn.storagePoolLookupByName("default").listVolumes()))


@pytest.fixture(autouse=True)
def _storage_inventory(world):
    """The storage app's path rule reads its pool rows: sync them as adding a host does."""
    sync_pools(world.host)


def free_bytes(host) -> int:
    return next(pool.available_bytes for pool in virt_host.list_pools(host.uri) if pool.name == "default")


# ---- the virt layer's XML ----


def test_it_reads_every_disk_with_its_device_bus_format_and_flags():
    xml_text = """<domain><devices>
      <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='/p/a.qcow2'/>
        <target dev='vda' bus='virtio'/></disk>
      <disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='/p/b.raw'/>
        <target dev='vdb' bus='virtio'/><shareable/></disk>
      <disk type='file' device='cdrom'><driver name='qemu' type='raw'/><target dev='hdc' bus='ide'/><readonly/></disk>
    </devices></domain>"""
    vda, vdb, hdc = disks.parse_disks(xml_text)
    assert (vda.target, vda.bus, vda.device, vda.source, vda.format, vda.writable) == (
        "vda",
        "virtio",
        "disk",
        "/p/a.qcow2",
        "qcow2",
        True,
    )
    assert vdb.shareable and vdb.format == "raw"
    assert (hdc.device, hdc.source, hdc.readonly, hdc.writable) == ("cdrom", "", True, False)


def test_it_builds_disk_elements_with_elementtree_so_paths_cannot_inject_xml():
    element = ET.fromstring(disks.disk_xml(path="/p/a'b<c>.qcow2", target="vdb", fmt="qcow2"))  # noqa: S314 - ours
    assert element.find("source").get("file") == "/p/a'b<c>.qcow2"
    assert element.find("driver").attrib == {"name": "qemu", "type": "qcow2"}
    assert element.find("target").attrib == {"dev": "vdb", "bus": "virtio"}
    empty = ET.fromstring(disks.disk_xml(path="", target="hdc", fmt="iso", bus="ide", device="cdrom"))  # noqa: S314
    assert empty.find("source") is None and empty.find("readonly") is not None
    assert empty.find("driver").get("type") == "raw"


def test_it_lists_a_vms_disks_with_their_pool_and_size(world):
    (vda,) = disk_services.describe_disks(world.vm, actor=world.alice)
    assert (vda.target, vda.pool, vda.capacity_bytes, vda.format) == ("vda", "default", 64 << 20, "qcow2")


def test_it_repoints_a_disk_changing_source_and_driver_type_together(world):
    disks.repoint(world.host.uri, world.vm.uuid, "vda", "/pool/vm0003.qcow2", "raw")
    (vda,) = disks.list_disks(world.host.uri, world.vm.uuid, inactive=True, with_sizes=False)
    assert (vda.source, vda.format) == ("/pool/vm0003.qcow2", "raw")


# ---- attach: refusals change nothing ----


@pytest.mark.parametrize("name", BAD_NAMES)
def test_it_refuses_bad_volume_names_and_creates_nothing(world, name):
    before = pool_volumes(world.host)
    with pytest.raises(ServiceError) as refused:
        disk_services.attach_disk(
            world.vm, actor=world.alice, pool="default", name=name, size_bytes=1 << 20, persistent=True
        )
    assert refused.value.status == 400 and refused.value.code == "invalid-name"
    assert pool_volumes(world.host) == before
    assert AuditEvent.objects.get(verb="vm.disk.attach").result == "refused"


@pytest.mark.parametrize("path", ["/etc/shadow", "/pool/../etc/shadow", "/pool/sub/x.qcow2", "pool/vm0003.qcow2", ""])
def test_it_refuses_existing_disks_outside_the_pools(world, path):
    with pytest.raises(ServiceError, match=r"storage pool|not contain") as refused:
        disk_services.attach_disk(world.vm, actor=world.alice, path=path, persistent=True)
    assert refused.value.code == "invalid-path"


@pytest.mark.parametrize(
    ("size", "message"),
    [
        (0, "greater than zero"),
        (-1, "greater than zero"),
        (1 << 61, "not a real disk size"),
        ("10G", "whole number"),
        (1.5, "whole number"),
        (True, "whole number"),
    ],
)
def test_it_refuses_bad_sizes_and_creates_nothing(world, size, message):
    before = pool_volumes(world.host)
    with pytest.raises(ServiceError, match=message) as refused:
        disk_services.attach_disk(
            world.vm, actor=world.alice, pool="default", name="new.qcow2", size_bytes=size, persistent=True
        )
    assert refused.value.status == 400
    assert pool_volumes(world.host) == before


def test_it_refuses_a_disk_larger_than_the_pools_free_space(world):
    with pytest.raises(ServiceError, match="bytes free") as refused:
        disk_services.attach_disk(
            world.vm,
            actor=world.alice,
            pool="default",
            name="huge.qcow2",
            size_bytes=free_bytes(world.host) + 1,
            persistent=True,
        )
    assert refused.value.code == "no-space"
    assert "huge.qcow2" not in pool_volumes(world.host)


def test_it_refuses_to_attach_live_to_a_shut_off_vm(world):
    with pytest.raises(ServiceError, match="not running") as refused:
        disk_services.attach_disk(
            world.vm, actor=world.alice, pool="default", name="new.qcow2", size_bytes=1 << 20, live=True
        )
    assert refused.value.status == 409
    assert "new.qcow2" not in pool_volumes(world.host)


def test_it_refuses_a_volume_another_vm_uses(world):
    with pytest.raises(ServiceError, match="already used by vm0003") as refused:
        disk_services.attach_disk(world.vm, actor=world.alice, path="/pool/vm0003.qcow2", persistent=True)
    assert refused.value.code == "volume-in-use"


def test_it_refuses_a_target_the_vm_already_has(world):
    with pytest.raises(ServiceError, match="already has a disk vda"):
        disk_services.attach_disk(
            world.vm,
            actor=world.alice,
            pool="default",
            name="n.qcow2",
            size_bytes=1 << 20,
            target="vda",
            persistent=True,
        )


@pytest.mark.parametrize("target", ["sda/../x", "vd", "vdB", "<vdb>", "xvda", "vdb1"])
def test_it_refuses_malformed_targets(world, target):
    with pytest.raises(ServiceError, match="device name"):
        disk_services.detach_disk(world.vm, target, actor=world.alice, persistent=True)


def test_a_new_volume_whose_attach_fails_is_deleted_again(world):
    # The test driver cannot hot-plug at all: the attach fails after the volume was created.
    with pytest.raises(ServiceError):
        disk_services.attach_disk(
            world.vm, actor=world.alice, pool="default", name="orphan.qcow2", size_bytes=1 << 20, persistent=True
        )
    assert "orphan.qcow2" not in pool_volumes(world.host)
    assert AuditEvent.objects.get(verb="vm.disk.attach").result == "failed"


def test_only_users_with_the_disk_privilege_change_disks(world):
    with pytest.raises(AccessDenied):
        disk_services.grow_disk(world.vm, "vda", 128 << 20, actor=world.carol)
    with pytest.raises(AccessDenied):
        disk_services.convert_disk(world.vm, "vda", actor=world.carol, fmt="raw")
    assert not Job.objects.exists()


# ---- grow ----


@pytest.mark.parametrize(
    ("size", "message"),
    [(32 << 20, "only grow"), (64 << 20, "only grow"), (0, "greater than zero"), (-5, "greater than zero")],
)
def test_it_refuses_to_shrink_or_keep_a_disk_the_same_size(world, size, message):
    with pytest.raises(ServiceError, match=message):
        disk_services.grow_disk(world.vm, "vda", size, actor=world.alice)
    (vda,) = disks.list_disks(world.host.uri, world.vm.uuid)
    assert vda.capacity_bytes == 64 << 20


def test_it_refuses_to_grow_beyond_the_pools_free_space(world):
    with pytest.raises(ServiceError, match="bytes free"):
        disk_services.grow_disk(world.vm, "vda", (64 << 20) + free_bytes(world.host) + 1, actor=world.alice)


def test_it_refuses_to_grow_a_disk_the_vm_does_not_have(world):
    with pytest.raises(ServiceError, match="no disk vdq"):
        disk_services.grow_disk(world.vm, "vdq", 1 << 30, actor=world.alice)


def test_it_refuses_media_for_a_drive_that_is_not_a_cdrom(world):
    with pytest.raises(ServiceError, match="not a CD-ROM"):
        disk_services.change_media(world.vm, "vda", actor=world.alice)


# ---- convert and move are jobs ----


def test_a_convert_is_queued_as_a_job_with_its_command(world):
    job = disk_services.convert_disk(world.vm, "vda", actor=world.alice, fmt="raw", delete_source=True)
    assert (job.kind, job.status, job.vm) == ("vm.disk.convert", "queued", world.vm)
    assert job.params["source"] == "/pool/vm0002.qcow2"
    assert (job.params["pool"], job.params["name"], job.params["format"]) == ("default", "vm0002.raw", "raw")
    assert job.params["command"].startswith("qemu-img convert -p -f qcow2 -O raw /pool/vm0002.qcow2 /pool/vm0002.raw")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"fmt": "qcow2"}, "already qcow2"),
        ({"fmt": "vmdk"}, "qcow2 or raw"),
        ({"fmt": "raw", "name": "a/b.raw"}, "volume name"),
        ({"fmt": "raw", "name": "../x.raw"}, "volume name"),
        ({"fmt": "raw", "name": "vm0003.qcow2"}, "already holds"),
        ({"fmt": "raw", "pool": "nope"}, "no active storage pool"),
        ({"fmt": "raw", "name": "é.raw"}, "volume name"),
    ],
)
def test_it_refuses_bad_conversions_before_a_job_exists(world, params, message):
    with pytest.raises(ServiceError, match=message):
        disk_services.convert_disk(world.vm, "vda", actor=world.alice, **params)
    assert not Job.objects.exists()
    assert AuditEvent.objects.get(verb="vm.disk.convert").result == "refused"


def test_it_refuses_to_convert_the_disk_of_a_running_vm(world):
    with pytest.raises(ServiceError, match="Shut the VM off"):
        disk_services.convert_disk(world.running_vm, "vda", actor=world.oscar, fmt="raw")


def test_it_refuses_to_convert_a_disk_whose_snapshots_would_be_lost(world):
    virt_snapshots.create_snapshot(world.host.uri, world.vm.uuid, "keep")
    with pytest.raises(ServiceError, match="has snapshots") as refused:
        disk_services.convert_disk(world.vm, "vda", actor=world.alice, fmt="raw")
    assert refused.value.code == "has-snapshots"


def test_a_move_needs_another_place_than_where_the_disk_is(world):
    with pytest.raises(ServiceError, match="already is"):
        disk_services.move_disk(world.vm, "vda", actor=world.alice, pool="default")
    job = disk_services.move_disk(world.vm, "vda", actor=world.alice, pool="default", name="moved.qcow2")
    assert (job.params["format"], job.params["live"]) == ("qcow2", False)


def test_one_disk_job_at_a_time_and_no_quick_change_meanwhile(world):
    disk_services.convert_disk(world.vm, "vda", actor=world.alice, fmt="raw")
    with pytest.raises(ServiceError, match="already running") as refused:
        disk_services.grow_disk(world.vm, "vda", 128 << 20, actor=world.alice)
    assert refused.value.status == 409


# ---- the convert job's steps (the test driver copies volumes too) ----


def run(job) -> Job:
    """Run a queued job in this process (the worker's code path, without a worker)."""
    runner.run_job(job.pk)
    job.refresh_from_db()
    return job


def vda(vm) -> disks.Disk:
    return disks.list_disks(vm.host.uri, vm.uuid, inactive=True, with_sizes=False)[0]


def test_a_convert_copies_repoints_and_then_deletes_the_old_volume(world):
    job = run(disk_services.convert_disk(world.vm, "vda", actor=world.alice, fmt="raw", delete_source=True))
    assert job.status == JobStatus.SUCCEEDED, (job.error, list(job.log_lines.values_list("line", flat=True)))
    assert (vda(world.vm).source, vda(world.vm).format) == ("/pool/vm0002.raw", "raw")
    assert job.result == {"target": "vda", "path": "/pool/vm0002.raw", "format": "raw", "source_deleted": True}
    assert "vm0002.qcow2" not in pool_volumes(world.host)
    world.vm.refresh_from_db()
    assert world.vm.disks[0]["source"] == "/pool/vm0002.raw"  # the inventory row followed


def test_a_convert_keeps_the_old_volume_unless_asked(world):
    assert run(disk_services.convert_disk(world.vm, "vda", actor=world.alice, fmt="raw")).status == "succeeded"
    assert {"vm0002.qcow2", "vm0002.raw"} <= pool_volumes(world.host)


def test_a_failed_repoint_deletes_the_copy_and_leaves_the_vm_as_it_was(world, monkeypatch):
    def refuse(*args, **kwargs):
        raise disks.HypervisorError("the definition could not be saved")

    monkeypatch.setattr(disks, "repoint", refuse)
    job = run(disk_services.convert_disk(world.vm, "vda", actor=world.alice, fmt="raw", delete_source=True))
    assert (job.status, job.error) == ("failed", "the definition could not be saved")
    assert (vda(world.vm).source, vda(world.vm).format) == ("/pool/vm0002.qcow2", "qcow2")
    assert "vm0002.raw" not in pool_volumes(world.host) and "vm0002.qcow2" in pool_volumes(world.host)


def test_a_cancelled_convert_deletes_the_copy_and_ends_cancelled(world):
    job = disk_services.convert_disk(world.vm, "vda", actor=world.alice, fmt="raw", delete_source=True)
    Job.objects.filter(pk=job.pk).update(cancel_requested=True)
    assert run(job).status == JobStatus.CANCELLED
    assert vda(world.vm).source == "/pool/vm0002.qcow2"
    assert "vm0002.raw" not in pool_volumes(world.host)


def test_a_convert_does_not_touch_a_vm_started_since_it_was_queued(world):
    job = disk_services.convert_disk(world.vm, "vda", actor=world.alice, fmt="raw")
    domain.start(world.host.uri, world.vm.uuid)
    assert "started or stopped" in run(job).error
    assert vda(world.vm).format == "qcow2" and "vm0002.raw" not in pool_volumes(world.host)
