"""Volumes on a test:/// host: create raw or qcow2, grow, delete; each bad input refused with a
clear message and nothing created; volumes in use are kept; only storage managers may write."""

import pytest

from apps.audit.models import AuditEvent
from apps.core.errors import AccessDenied, ServiceError
from apps.storage import services, transfers
from apps.storage.models import StorageVolume
from kvmpanel.virt import storage as virt_storage

MIB = 1 << 20


def host_volume_names(pool) -> set[str]:
    return {volume.name for volume in virt_storage.list_pools(pool.host.uri, names=[pool.name])[0].volumes}


def test_raw_and_qcow2_volumes_are_created_with_their_rows(default_pool, storage_world):
    for name, fmt in (("data.qcow2", "qcow2"), ("data.raw", "raw")):
        volume = services.create_volume(
            default_pool, actor=storage_world.root, name=name, fmt=fmt, capacity_bytes=8 * MIB
        )
        assert (volume.name, volume.format, volume.capacity_bytes, volume.path) == (name, fmt, 8 * MIB, f"/pool/{name}")
        assert AuditEvent.objects.filter(verb="volume.create", result="ok", target_id=str(volume.pk)).exists()
    assert {"data.qcow2", "data.raw"} <= host_volume_names(default_pool)
    default_pool.refresh_from_db()
    assert default_pool.allocation_bytes > 0


@pytest.mark.parametrize(
    ("name", "fmt", "size", "code"),
    [
        ("ok.qcow2", "qcow2", 0, "invalid-size"),
        ("ok.qcow2", "qcow2", -1, "invalid-size"),
        ("ok.qcow2", "qcow2", -(1 << 40), "invalid-size"),
        ("ok.qcow2", "qcow2", 10**30, "invalid-size"),
        ("ok.qcow2", "qcow2", 1 << 61, "invalid-size"),
        ("ok.qcow2", "qcow2", "12", "invalid-size"),
        ("ok.qcow2", "qcow2", True, "invalid-size"),
        ("ok.qcow2", "qcow2", 1.5, "invalid-size"),
        ("ok.qcow2", "qcow2", None, "invalid-size"),
        ("a/b", "qcow2", MIB, "invalid-name"),
        ("..", "qcow2", MIB, "invalid-name"),
        ("a..qcow2", "qcow2", MIB, "invalid-name"),
        ("../etc/passwd", "qcow2", MIB, "invalid-name"),
        ("<x>", "qcow2", MIB, "invalid-name"),
        ("a&b", "qcow2", MIB, "invalid-name"),
        ('a"b', "qcow2", MIB, "invalid-name"),
        ("x" * 300, "qcow2", MIB, "invalid-name"),
        ("x" * 64, "qcow2", MIB, "invalid-name"),
        ("vólume.qcow2", "qcow2", MIB, "invalid-name"),
        (".hidden", "qcow2", MIB, "invalid-name"),
        ("", "qcow2", MIB, "invalid-name"),
        (None, "qcow2", MIB, "invalid-name"),
        ("ok.vmdk", "vmdk", MIB, "invalid-format"),
        ("ok.qcow2", "", MIB, "invalid-format"),
    ],
)
def test_bad_volume_requests_are_refused_and_create_nothing(default_pool, storage_world, name, fmt, size, code):
    before = host_volume_names(default_pool)
    with pytest.raises(ServiceError) as refused:
        services.create_volume(default_pool, actor=storage_world.root, name=name, fmt=fmt, capacity_bytes=size)
    assert (refused.value.status, refused.value.code) == (400, code)
    assert refused.value.message
    assert host_volume_names(default_pool) == before
    assert default_pool.volumes.count() == 4


def test_a_volume_beyond_the_pools_free_space_is_refused(default_pool, storage_world):
    free = virt_storage.pool_info(default_pool.host.uri, "default").available_bytes
    with pytest.raises(ServiceError) as refused:
        services.create_volume(
            default_pool, actor=storage_world.root, name="big.raw", fmt="raw", capacity_bytes=free + 1
        )
    assert refused.value.status == 400
    assert f"only {free} bytes free" in refused.value.message
    assert "big.raw" not in host_volume_names(default_pool)


def test_a_taken_name_is_a_conflict(default_pool, storage_world):
    with pytest.raises(ServiceError) as refused:
        services.create_volume(default_pool, actor=storage_world.root, name="vm0000.qcow2", capacity_bytes=MIB)
    assert (refused.value.status, refused.value.code) == (409, "exists")


def test_volumes_only_grow(default_pool, storage_world):
    volume = default_pool.volumes.get(name="vm0003.qcow2")
    for size in (64 * MIB, MIB, 0, -5):
        with pytest.raises(ServiceError) as refused:
            services.resize_volume(volume, size, actor=storage_world.root)
        assert refused.value.status == 400
    volume.refresh_from_db()
    assert volume.capacity_bytes == 64 * MIB


def test_a_host_that_cannot_resize_says_so(default_pool, storage_world):
    # The test driver has no virStorageVolResize: the refusal is the host's, and nothing changes.
    volume = default_pool.volumes.get(name="vm0003.qcow2")
    with pytest.raises(ServiceError) as refused:
        services.resize_volume(volume, 128 * MIB, actor=storage_world.root)
    assert refused.value.status == 409
    assert "not supported" in refused.value.message
    assert AuditEvent.objects.filter(verb="volume.resize", result="failed").exists()


def test_a_running_vms_disk_is_not_resized_here(default_pool, storage_world):
    volume = default_pool.volumes.get(name="vm0000.qcow2")  # vm0000 is running
    with pytest.raises(ServiceError) as refused:
        services.resize_volume(volume, 128 * MIB, actor=storage_world.root)
    assert (refused.value.status, refused.value.code) == (409, "in-use")
    assert "vm0000" in refused.value.message and "blockresize" in refused.value.message


def test_a_volume_is_deleted(default_pool, storage_world):
    volume = services.create_volume(
        default_pool, actor=storage_world.root, name="gone.raw", fmt="raw", capacity_bytes=MIB
    )
    volume_id = volume.pk
    services.delete_volume(volume, actor=storage_world.root)
    assert "gone.raw" not in host_volume_names(default_pool)
    assert not StorageVolume.objects.filter(name="gone.raw").exists()
    assert AuditEvent.objects.filter(verb="volume.delete", result="ok", target_id=str(volume_id)).exists()


def test_a_vms_disk_and_a_backing_file_are_not_deleted(default_pool, storage_world):
    disk = default_pool.volumes.get(name="vm0002.qcow2")  # vm0002 is shut off, but it is still its disk
    with pytest.raises(ServiceError) as refused:
        services.delete_volume(disk, actor=storage_world.root)
    assert (refused.value.status, refused.value.code) == (409, "in-use")
    assert "vm0002" in refused.value.message
    base = services.create_volume(default_pool, actor=storage_world.root, name="base.qcow2", capacity_bytes=MIB)
    StorageVolume.objects.create(pool=default_pool, name="overlay.qcow2", path="/pool/o.qcow2", backing_path=base.path)
    with pytest.raises(ServiceError) as refused:
        services.delete_volume(base, actor=storage_world.root)
    assert "overlay.qcow2" in refused.value.message
    assert {"vm0002.qcow2", "base.qcow2"} <= host_volume_names(default_pool)


@pytest.mark.parametrize("persona", ["bob", "carol", "oscar"])
def test_only_storage_managers_change_or_read_volumes(default_pool, storage_world, persona):
    user = getattr(storage_world, persona)
    volume = default_pool.volumes.get(name="vm0003.qcow2")
    attempts = [
        lambda: services.create_volume(default_pool, actor=user, name="x.qcow2", capacity_bytes=MIB),
        lambda: services.resize_volume(volume, 128 * MIB, actor=user),
        lambda: services.delete_volume(volume, actor=user),
        lambda: transfers.open_volume_download(volume, actor=user),
    ]
    for attempt in attempts:
        with pytest.raises(AccessDenied):
            attempt()
    assert host_volume_names(default_pool) == {f"vm000{i}.qcow2" for i in range(4)}
    assert AuditEvent.objects.filter(result="denied", actor=user).count() == len(attempts)
