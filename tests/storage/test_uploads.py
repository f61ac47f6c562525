"""Upload sessions on a test:/// host: the checks before a volume exists, parts in order, the qcow2
header check, abort and idle reaping deleting the half-filled volume, and who may do what. (The test
driver cannot stream, so the bytes themselves travel in tests/storage/test_lab.py.)"""

import io
import struct
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.core.errors import AccessDenied, ServiceError
from apps.storage import services, transfers
from apps.storage.models import StorageUpload, StorageVolume
from apps.storage.sync import sync_pools
from kvmpanel.virt import storage as virt_storage

MIB = 1 << 20


def host_volume_names(pool) -> set[str]:
    return {volume.name for volume in virt_storage.list_pools(pool.host.uri, names=[pool.name])[0].volumes}


def qcow2_header(*, backing_offset: int = 0, incompatible: int = 0) -> bytes:
    header = b"QFI\xfb" + struct.pack(">IQI", 3, backing_offset, 0) + bytes(52) + struct.pack(">Q", incompatible)
    return header + bytes(512 - len(header))


@pytest.fixture
def upload(default_pool, storage_world) -> StorageUpload:
    return transfers.start_upload(default_pool, actor=storage_world.root, name="t.iso", size=3 * MIB)


def test_an_upload_starts_with_its_whole_volume_made_sparse(default_pool, storage_world, upload):
    info = virt_storage.volume_info(default_pool.host.uri, "default", "t.iso")
    assert (info.capacity_bytes, info.format) == (3 * MIB, "raw")
    assert (upload.size_bytes, upload.received_bytes, upload.requested_by) == (3 * MIB, 0, storage_world.root)
    assert AuditEvent.objects.filter(verb="volume.upload", message="started").exists()


@pytest.mark.parametrize(
    ("name", "size", "code"),
    [
        ("t.iso", 0, "invalid-size"),
        ("t.iso", -1, "invalid-size"),
        ("t.iso", 1 << 70, "invalid-size"),
        ("t.iso", "12", "invalid-size"),
        ("t.iso", 1.5, "invalid-size"),
        ("t.iso", True, "invalid-size"),
        ("a/b.iso", MIB, "invalid-name"),
        ("..", MIB, "invalid-name"),
        ("<x>.iso", MIB, "invalid-name"),
        ("x" * 300, MIB, "invalid-name"),
        ("ïso.iso", MIB, "invalid-name"),
        ("vm0000.qcow2", MIB, "exists"),
    ],
)
def test_bad_uploads_are_refused_before_a_volume_exists(default_pool, storage_world, name, size, code):
    before = host_volume_names(default_pool)
    with pytest.raises(ServiceError) as refused:
        transfers.start_upload(default_pool, actor=storage_world.root, name=name, size=size)
    assert refused.value.code == code and refused.value.message
    assert host_volume_names(default_pool) == before
    assert not StorageUpload.objects.exists()


def test_an_upload_beyond_the_pools_free_space_is_refused(default_pool, storage_world, settings):
    free = virt_storage.pool_info(default_pool.host.uri, "default").available_bytes
    settings.KVMPANEL_STORAGE_UPLOAD_MAX_BYTES = free * 2
    with pytest.raises(ServiceError) as refused:
        transfers.start_upload(default_pool, actor=storage_world.root, name="big.iso", size=free + 1)
    assert (refused.value.status, refused.value.code) == (400, "invalid-size")
    assert "free" in refused.value.message


def test_a_second_upload_of_the_same_name_is_a_conflict(default_pool, storage_world, upload):
    with pytest.raises(ServiceError) as refused:
        transfers.start_upload(default_pool, actor=storage_world.root, name="t.iso", size=MIB)
    assert refused.value.status == 409


@pytest.mark.parametrize(
    ("offset", "length", "code"),
    [
        (MIB, MIB, "offset"),  # parts come in order
        ("x", MIB, "offset"),
        (0, 0, "invalid-size"),
        (0, 65 * MIB, "invalid-size"),  # bigger than a part may be
        (0, 4 * MIB, "invalid-size"),  # past the announced size
    ],
)
def test_parts_out_of_order_or_out_of_size_are_refused(upload, storage_world, offset, length, code):
    with pytest.raises(ServiceError) as refused:
        transfers.write_upload_part(
            upload, io.BytesIO(b"x" * 16), actor=storage_world.root, offset=offset, length=length
        )
    assert refused.value.code == code
    upload.refresh_from_db()
    assert upload.received_bytes == 0


def test_only_who_started_an_upload_continues_it(upload, storage_world):
    other = storage_world.oscar.__class__.objects.create_superuser("other-admin")
    with pytest.raises(ServiceError) as refused:
        transfers.write_upload_part(upload, io.BytesIO(b"x" * 16), actor=other, offset=0, length=16)
    assert refused.value.status == 403


@pytest.mark.parametrize(
    "head", [qcow2_header(backing_offset=512), qcow2_header(incompatible=1 << 2)], ids=["backing", "data-file"]
)
def test_a_qcow2_that_names_other_files_is_refused_and_its_upload_aborted(default_pool, storage_world, head):
    upload = transfers.start_upload(default_pool, actor=storage_world.root, name="evil.qcow2", size=MIB)
    with pytest.raises(ServiceError) as refused:
        transfers.write_upload_part(upload, io.BytesIO(head), actor=storage_world.root, offset=0, length=len(head))
    assert refused.value.code == "unsafe-image"
    assert "evil.qcow2" not in host_volume_names(default_pool)
    assert not StorageUpload.objects.exists()


def test_a_part_the_host_cannot_take_is_a_clear_refusal(upload, storage_world):
    # The test driver has no virStorageVolUpload: the session stays, so a client could retry.
    with pytest.raises(ServiceError) as refused:
        transfers.write_upload_part(upload, io.BytesIO(b"x" * 64), actor=storage_world.root, offset=0, length=64)
    assert refused.value.status == 409 and "not supported" in refused.value.message
    assert StorageUpload.objects.get(pk=upload.pk).received_bytes == 0


def test_an_aborted_upload_leaves_nothing(default_pool, storage_world, upload):
    transfers.abort_upload(upload, actor=storage_world.root)
    assert "t.iso" not in host_volume_names(default_pool)
    assert not StorageUpload.objects.exists() and not StorageVolume.objects.filter(name="t.iso").exists()
    assert AuditEvent.objects.filter(verb="volume.upload", result="failed", message="aborted").exists()


def test_idle_uploads_are_reaped_with_their_volumes(default_pool, storage_world, upload):
    assert transfers.reap_idle_uploads(idle_seconds=60) == []
    StorageUpload.objects.filter(pk=upload.pk).update(updated_at=timezone.now() - timedelta(hours=2))
    assert transfers.reap_idle_uploads(idle_seconds=3600) == ["t.iso"]
    assert "t.iso" not in host_volume_names(default_pool)


def test_a_volume_still_uploading_is_left_alone(default_pool, storage_world, upload):
    sync_pools(default_pool.host)
    volume = StorageVolume.objects.get(pool=default_pool, name="t.iso")
    for attempt in (
        lambda: services.delete_volume(volume, actor=storage_world.root),
        lambda: services.resize_volume(volume, 8 * MIB, actor=storage_world.root),
        lambda: transfers.open_volume_download(volume, actor=storage_world.root),
        lambda: services.volume_at_path(default_pool.host, "/pool/t.iso", must_exist=True),
    ):
        with pytest.raises(ServiceError) as refused:
            attempt()
        assert refused.value.code == "uploading"
    assert "t.iso" in host_volume_names(default_pool)


@pytest.mark.parametrize("persona", ["bob", "carol", "oscar"])
def test_only_storage_managers_upload(default_pool, storage_world, upload, persona):
    user = getattr(storage_world, persona)
    attempts = [
        lambda: transfers.start_upload(default_pool, actor=user, name="x.iso", size=MIB),
        lambda: transfers.write_upload_part(upload, io.BytesIO(b"x"), actor=user, offset=0, length=1),
        lambda: transfers.abort_upload(upload, actor=user),
    ]
    for attempt in attempts:
        with pytest.raises(AccessDenied):
            attempt()
    assert StorageUpload.objects.filter(pk=upload.pk).exists()
    assert AuditEvent.objects.filter(result="denied", actor=user).count() == len(attempts)
