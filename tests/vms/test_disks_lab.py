"""Disk operations on a real libvirtd + QEMU (TCG) with the tiny guest, jobs in a real Celery worker.

The guest itself is the witness: it sees a hot-plugged disk appear, grow and go, and a marker it
wrote to its disk is still there after the disk was converted raw↔qcow2 or moved to another pool.
"""

import contextlib
import os
import shutil
import time
import uuid

import pytest

from apps.audit.models import AuditEvent
from apps.core.errors import ServiceError
from apps.jobs.choices import TERMINAL, JobStatus
from apps.jobs.models import Job
from apps.storage.sync import sync_pools
from apps.vms import disks as disk_services
from apps.vms import services as vm_services
from apps.vms import snapshots as snapshot_services
from kvmpanel.virt import disks, storage
from kvmpanel.virt.connection import call
from kvmpanel.virt.errors import HypervisorError
from tests.conftest import ROOT
from tests.support.guest_shell import read_marker, run_in_guest, write_marker
from tests.support.lab import boots_seen, wait_for

pytestmark = [pytest.mark.lab, pytest.mark.django_db(transaction=True)]

HOST = 1  # the shared lab_host fixture


@pytest.fixture(autouse=True)
def _storage_inventory(lab_host):
    """The storage app's path rule reads its pool rows; adding a host does not fill them (yet)."""
    sync_pools(lab_host)


def boot(vm, operator):
    seen = boots_seen(HOST, vm.name)
    vm = vm_services.run_lifecycle(vm, "start", actor=operator)
    wait_for(lambda: boots_seen(HOST, vm.name) > seen, 90, "the guest to boot")
    return vm


def power_off(vm, operator):
    return vm_services.run_lifecycle(vm, "force-off", actor=operator)


def finish(job, timeout: float = 120) -> Job:
    wait_for(lambda: Job.objects.get(pk=job.pk).status in TERMINAL, timeout, f"job {job.kind} #{job.pk}")
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, (job.error, list(job.log_lines.values_list("line", flat=True)))
    return job


def configured(vm, target: str = "vda") -> disks.Disk:
    return next(d for d in disks.list_disks(vm.host.uri, vm.uuid, inactive=True) if d.target == target)


def exists(vm, path: str) -> bool:
    pool_dir, name = path.rsplit("/", 1)
    pools = {pool.path.rstrip("/"): pool.name for pool in storage.list_pools(vm.host.uri, with_volumes=False)}
    return storage.volume_info(vm.host.uri, pools[pool_dir], name) is not None


def guest_sectors(vm, device: str) -> int:
    return int(run_in_guest(vm, f"cat /sys/block/{device}/size"))


@pytest.fixture
def scratch_pool(lab_host):
    """A second directory pool on lab host 1 (the iso pool's shared images must never be touched)."""
    name = f"t-pool-{uuid.uuid4().hex[:6]}"
    path = ROOT / "var" / "lab" / f"host{HOST}" / name
    path.mkdir(parents=True)
    storage.ensure_dir_pool(lab_host.uri, name, str(path))
    sync_pools(lab_host)
    yield name

    def remove(conn):
        pool = conn.storagePoolLookupByName(name)
        for volume in pool.listAllVolumes(0):
            volume.delete(0)
        pool.destroy()
        pool.undefine()

    with contextlib.suppress(HypervisorError):
        call(lab_host.uri, remove)
    shutil.rmtree(path, ignore_errors=True)


def test_a_disk_is_hot_plugged_grown_live_and_unplugged_and_the_guest_sees_each_step(make_guest, operator):
    vm = boot(make_guest("plug"), operator)
    name = f"{vm.name}-data.qcow2"
    try:
        change = disk_services.attach_disk(
            vm, actor=operator, pool="default", name=name, size_bytes=16 << 20, fmt="qcow2"
        )
        assert change.target == "vdb"
        assert change.command.endswith("--subdriver qcow2 --targetbus virtio --live --config")
        assert "virsh vol-create-as default" in change.command
        wait_for(lambda: "vdb" in run_in_guest(vm, "ls /sys/block"), 20, "the guest to see vdb")
        assert guest_sectors(vm, "vdb") == (16 << 20) // 512
        assert configured(vm, "vdb").format == "qcow2"  # persistent as well
        assert any(d["target"] == "vdb" for d in change.vm.disks)  # the inventory row follows

        change = disk_services.grow_disk(vm, "vdb", 48 << 20, actor=operator)
        assert change.command == f"virsh blockresize {vm.name} vdb {48 << 20}B"
        wait_for(lambda: guest_sectors(vm, "vdb") == (48 << 20) // 512, 20, "the guest to see the new size")

        with pytest.raises(ServiceError, match="only grow"):
            disk_services.grow_disk(vm, "vdb", 32 << 20, actor=operator)

        started = time.monotonic()
        disk_services.detach_disk(vm, "vdb", actor=operator)
        print(f"live detach took {time.monotonic() - started:.2f} s")
        assert "vdb" not in run_in_guest(vm, "ls /sys/block")
        assert all(d.target != "vdb" for d in disks.list_disks(vm.host.uri, vm.uuid, inactive=True))
        assert storage.volume_info(vm.host.uri, "default", name) is not None  # detached, not deleted

        # For the next boot only: the running guest never sees it, and detach finds it where it is.
        volume = storage.volume_info(vm.host.uri, "default", name)
        change = disk_services.attach_disk(vm, actor=operator, path=volume.path, live=False)
        assert change.command.endswith("--targetbus virtio --config")
        assert configured(vm, change.target).source == volume.path
        assert "vdb" not in run_in_guest(vm, "ls /sys/block")
        change = disk_services.detach_disk(vm, change.target, actor=operator)
        assert change.command.endswith(f"detach-disk {vm.name} vdb --config")
    finally:
        with contextlib.suppress(HypervisorError):
            storage.delete_volume(vm.host.uri, "default", name)
    verbs = list(AuditEvent.objects.filter(target_id=str(vm.pk)).values_list("verb", "result"))
    for verb in ("vm.disk.attach", "vm.disk.grow", "vm.disk.detach"):
        assert (verb, "ok") in verbs
    assert ("vm.disk.grow", "refused") in verbs


def test_an_existing_raw_volume_is_attached_to_the_configuration_of_a_shut_off_vm(make_guest, operator):
    vm = make_guest("cold")
    name = f"{vm.name}-raw.img"
    path = storage.create_volume(vm.host.uri, "default", name, capacity_bytes=8 << 20, fmt="raw")
    try:
        with pytest.raises(ServiceError, match="not running"):
            disk_services.attach_disk(vm, actor=operator, path=path, live=True)
        change = disk_services.attach_disk(vm, actor=operator, path=path, target="vdc")
        assert change.command.endswith("--subdriver raw --targetbus virtio --config")
        assert configured(vm, "vdc").format == "raw"
        with pytest.raises(ServiceError, match="already used by"):
            disk_services.attach_disk(vm, actor=operator, path=path)

        # Cold grow goes through the volume (vol-resize); the guest sees it when it boots.
        change = disk_services.grow_disk(vm, "vdc", 12 << 20, actor=operator)
        assert change.command.startswith("virsh vol-resize ")
        vm = boot(vm, operator)
        # Linux names disks in the order it finds them: the second virtio disk is its vdb, whatever its target.
        assert guest_sectors(vm, "vdb") == (12 << 20) // 512
        power_off(vm, operator)
        disk_services.detach_disk(vm, "vdc", actor=operator)
    finally:
        with contextlib.suppress(HypervisorError):
            storage.delete_volume(vm.host.uri, "default", name)


def test_convert_raw_to_qcow2_to_raw_keeps_the_guests_data(make_guest, operator, worker):
    vm = boot(make_guest("conv"), operator)
    marker = write_marker(vm)
    vm = power_off(vm, operator)
    original = configured(vm).source

    # qcow2 (the guest's disk) -> raw: the raw disk this test starts from.
    job = finish(disk_services.convert_disk(vm, "vda", actor=operator, fmt="raw", delete_source=True))
    raw = configured(vm)
    assert (raw.format, raw.source) == ("raw", original.removesuffix(".qcow2") + ".raw")
    assert job.result["source_deleted"] and not exists(vm, original)
    assert job.params["command"].startswith("qemu-img convert -p -f qcow2 -O raw ")

    with pytest.raises(ServiceError, match="convert disk vda \\(raw\\) to qcow2 first"):
        snapshot_services.create_snapshot(vm, actor=operator, name="refused")

    # raw -> qcow2, keeping the raw volume this time; the guest reads its marker from the qcow2 file.
    started = time.monotonic()
    finish(disk_services.convert_disk(vm, "vda", actor=operator, fmt="qcow2", name=f"{vm.name}-b.qcow2"))
    print(f"raw -> qcow2 job took {time.monotonic() - started:.2f} s")
    assert (configured(vm).format, configured(vm).source.rsplit("/", 1)[1]) == ("qcow2", f"{vm.name}-b.qcow2")
    assert exists(vm, raw.source)  # kept: not asked to delete
    vm = boot(vm, operator)
    assert read_marker(vm) == marker
    vm = power_off(vm, operator)

    # qcow2 -> raw again: the source and the driver type changed together, or the marker would be gone.
    finish(
        disk_services.convert_disk(vm, "vda", actor=operator, fmt="raw", name=f"{vm.name}-c.raw", delete_source=True)
    )
    assert configured(vm).format == "raw"
    vm = boot(vm, operator)
    assert read_marker(vm) == marker
    storage.delete_volume(vm.host.uri, "default", raw.source.rsplit("/", 1)[1])


def test_a_disk_moves_to_another_pool_shut_off_and_back_while_running(make_guest, operator, worker, scratch_pool):
    vm = boot(make_guest("move"), operator)
    marker = write_marker(vm)
    vm = power_off(vm, operator)
    before = configured(vm)

    finish(disk_services.move_disk(vm, "vda", actor=operator, pool=scratch_pool, delete_source=True))
    moved = configured(vm)
    assert (moved.pool, moved.format, moved.source.rsplit("/", 1)[1]) == (
        scratch_pool,
        "qcow2",
        before.source.rsplit("/", 1)[1],
    )
    assert not exists(vm, before.source)

    # Live: QEMU mirrors the disk while the guest runs, then switches over (virsh blockcopy --pivot).
    vm = boot(vm, operator)
    started = time.monotonic()
    job = finish(disk_services.move_disk(vm, "vda", actor=operator, pool="default", delete_source=True))
    print(f"live move job took {time.monotonic() - started:.2f} s")
    assert job.params["live"] and job.params["command"].startswith("virsh blockcopy ")
    live = next(d for d in disks.list_disks(vm.host.uri, vm.uuid) if d.target == "vda")
    assert live.pool == "default" and configured(vm).pool == "default"  # running and persistent both
    assert read_marker(vm) == marker
    marker_after = write_marker(vm)  # the guest writes to the new disk
    vm = power_off(vm, operator)
    vm = boot(vm, operator)
    assert read_marker(vm) == marker_after


def test_the_cdrom_is_ejected_and_loaded_again_while_the_guest_runs(make_guest, operator):
    vm = vm_services.run_lifecycle(make_guest("cd"), "start", actor=operator)
    drive = next(d for d in disks.list_disks(vm.host.uri, vm.uuid) if d.device == "cdrom")
    change = disk_services.change_media(vm, drive.target, actor=operator)
    assert change.command == f"virsh change-media {vm.name} {drive.target} --eject --live --config"
    assert [d.source for d in disks.list_disks(vm.host.uri, vm.uuid) if d.device == "cdrom"] == [""]
    assert configured(vm, drive.target).source == ""
    with pytest.raises(ServiceError, match="CD-ROM image"):
        disk_services.change_media(vm, drive.target, actor=operator, path=configured(vm).source)
    change = disk_services.change_media(vm, drive.target, actor=operator, path=drive.source)
    assert "--insert --live --config" in change.command
    assert configured(vm, drive.target).source == drive.source
    change.vm.refresh_from_db()
    assert any(d["source"] == drive.source for d in change.vm.disks)


def test_a_convert_cancelled_mid_copy_leaves_the_vm_on_its_disk_and_no_copy(make_guest, operator, worker):
    from apps.jobs.services import request_cancel

    vm = make_guest("cancel")
    name = f"{vm.name}-big.raw"
    path = storage.create_volume(vm.host.uri, "default", name, capacity_bytes=2 << 30, fmt="raw")
    with open(path, "r+b") as disk:  # real data, so qemu-img has something to copy for a while
        chunk = os.urandom(1 << 20)
        for _ in range(2048):
            disk.write(chunk)
    disk_services.attach_disk(vm, actor=operator, path=path, target="vdb")
    job = disk_services.convert_disk(vm, "vdb", actor=operator, fmt="qcow2")
    wait_for(lambda: Job.objects.get(pk=job.pk).percent > 0, 60, "the copy to start")
    request_cancel(job, actor=operator)
    wait_for(lambda: Job.objects.get(pk=job.pk).status in TERMINAL, 60, "the job to stop")
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED, (job.error, list(job.log_lines.values_list("line", flat=True)))
    print(f"cancelled at {job.percent}% of {job.bytes_total} bytes")
    assert job.percent < 100
    assert (configured(vm, "vdb").source, configured(vm, "vdb").format) == (path, "raw")
    assert storage.volume_info(vm.host.uri, "default", f"{vm.name}-big.qcow2") is None


def test_a_live_move_cancelled_mid_mirror_keeps_the_running_vm_on_its_disk(make_guest, operator, worker, scratch_pool):
    from apps.jobs.services import request_cancel

    vm = boot(make_guest("mirror"), operator)
    path = storage.create_volume(vm.host.uri, "default", f"{vm.name}-big.raw", capacity_bytes=2 << 30, fmt="raw")
    with open(path, "r+b") as disk:
        chunk = os.urandom(1 << 20)
        for _ in range(2048):
            disk.write(chunk)
    disk_services.attach_disk(vm, actor=operator, path=path, target="vdb")
    job = disk_services.move_disk(vm, "vdb", actor=operator, pool=scratch_pool)
    assert job.params["live"]
    wait_for(lambda: Job.objects.get(pk=job.pk).percent > 0, 60, "the mirror to start")
    request_cancel(job, actor=operator)
    wait_for(lambda: Job.objects.get(pk=job.pk).status in TERMINAL, 60, "the job to stop")
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED, (job.error, list(job.log_lines.values_list("line", flat=True)))
    print(f"mirror cancelled at {job.percent}%")
    running = next(d for d in disks.list_disks(vm.host.uri, vm.uuid) if d.target == "vdb")
    assert running.source == path == configured(vm, "vdb").source
    assert storage.volume_info(vm.host.uri, scratch_pool, f"{vm.name}-big.raw") is None
    assert "vdb" in run_in_guest(vm, "ls /sys/block")  # the guest still has its disk
    disk_services.detach_disk(vm, "vdb", actor=operator)  # no block job is left holding it
    storage.delete_volume(vm.host.uri, "default", f"{vm.name}-big.raw")
