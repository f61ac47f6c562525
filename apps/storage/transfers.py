"""Uploads and downloads of volume contents, through libvirt streams (no agent on the host).

An upload is a session: `start_upload` checks the name and size and creates the volume on the
host at its full size (sparse), `write_upload_part` fills it one request-sized part at a time, in
order, and the last part finishes it (the host detects the format: qcow2, iso, raw). The parts keep
each process's memory to one part: the ASGI server (daphne) holds a whole request body in memory
before the panel sees it, so one multi-GiB request would cost that much RAM. `abort_upload`, and
`reap_idle_uploads` for sessions nobody finished, delete the half-filled volume: nothing
half-written stays behind.

A download streams `virsh vol-download --sparse` back; reading a volume is reading a VM's disk, so
it takes `storage.manage` like every write.
"""

import contextlib
import itertools
import logging
import struct
from datetime import timedelta
from typing import BinaryIO

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.audit.choices import AuditResult
from apps.audit.services import record_event
from apps.core.errors import ServiceError, from_hypervisor
from apps.hosts.models import Host
from apps.storage.models import StoragePool, StorageUpload, StorageVolume
from apps.storage.services import audit, authorize, check_room, on_host
from apps.storage.sync import resync_quietly
from apps.storage.validators import conflict, invalid, validate_volume_name
from kvmpanel.virt import storage as virt_storage
from kvmpanel.virt.errors import HypervisorError

log = logging.getLogger(__name__)

CHUNK_BYTES = virt_storage.STREAM_CHUNK_BYTES
# The part size clients are told to use, and the most one request may carry. Measured on lab host 1
# (512 MiB): 8 MiB parts 55 MiB/s, 16 MiB 102 MiB/s, 32 MiB 107 MiB/s (each request costs ~0.1 s);
# the panel's memory grows by about one part per upload in flight.
PART_BYTES = 16 << 20
MAX_PART_BYTES = 64 << 20
# Caps one upload (KVMPANEL_STORAGE_UPLOAD_MAX_BYTES overrides it).
DEFAULT_UPLOAD_MAX_BYTES = 64 << 30
# An upload with no part for this long is aborted (KVMPANEL_STORAGE_UPLOAD_IDLE_SECONDS).
DEFAULT_UPLOAD_IDLE_SECONDS = 3600

_QCOW_MAGIC = b"QFI\xfb"
_QCOW_EXTERNAL_DATA_FILE = 1 << 2  # incompatible feature bit: guest data lives in another file


def upload_limit_bytes() -> int:
    return int(getattr(settings, "KVMPANEL_STORAGE_UPLOAD_MAX_BYTES", DEFAULT_UPLOAD_MAX_BYTES))


def refuse_unsafe_image(head: bytes) -> None:
    """A qcow2 image names other files in its header (a backing file, an external data file):
    uploaded, it could make a VM read any file on the host (`/etc/shadow`, another VM's disk).
    Such images are refused at their first part."""
    if len(head) < 32 or not head.startswith(_QCOW_MAGIC):
        return
    version, backing_offset = struct.unpack(">IQ", head[4:16])
    if backing_offset:
        raise invalid(
            _("The qcow2 image refers to a backing file; upload a standalone image (qemu-img convert -O qcow2)."),
            code="unsafe-image",
        )
    if version >= 3 and len(head) >= 80:
        (incompatible,) = struct.unpack(">Q", head[72:80])
        if incompatible & _QCOW_EXTERNAL_DATA_FILE:
            raise invalid(
                _("The qcow2 image keeps its data in an external file; upload a standalone image."),
                code="unsafe-image",
            )


def validate_upload(pool: StoragePool, *, name: object, size: object) -> tuple[str, int]:
    """The checks an upload passes before its volume exists: a valid name free in the pool, a
    size above zero, within the panel's upload limit and the pool's free space (as the host says)."""
    name = validate_volume_name(name)
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        raise invalid(_("Give the file's size in bytes, above zero (an empty file is not an image)."), "invalid-size")
    limit = upload_limit_bytes()
    if size > limit:
        raise invalid(
            _("The file is %(size)d bytes; uploads are limited to %(limit)d bytes.") % {"size": size, "limit": limit},
            code="invalid-size",
        )
    if pool.volumes.filter(name=name).exists() or pool.uploads.filter(name=name).exists():
        raise conflict(_("Pool %(pool)s already holds a volume named %(name)s.") % {"pool": pool.name, "name": name})
    check_room(pool, size)
    return name, size


def start_upload(
    pool: StoragePool, *, actor, name: object, size: object, client_address: str | None = None
) -> StorageUpload:
    """`virsh vol-create-as POOL NAME SIZE --format raw` (sparse): the volume the parts will fill."""
    host = pool.host
    authorize(actor, host, "volume.upload", pool, client_address)
    reap_idle_uploads(host=host)
    name, size = validate_upload(pool, name=name, size=size)
    detail = {"pool": pool.name, "name": name, "bytes": size}
    on_host(
        host,
        lambda: virt_storage.create_volume(host.uri, pool.name, name, capacity_bytes=size, fmt="raw"),
        actor=actor,
        verb="volume.upload",
        target=pool,
        detail=detail,
        client_address=client_address,
    )
    try:
        with transaction.atomic():
            upload = StorageUpload.objects.create(pool=pool, name=name, size_bytes=size, requested_by=actor)
            audit(actor, "volume.upload", pool, detail, client_address, message="started")
    except IntegrityError as error:  # a second start raced this one to the same name
        _delete_quietly(host, pool.name, name)
        raise conflict(_("%(name)s is already being uploaded.") % {"name": name}) from error
    return upload


def write_upload_part(
    upload: StorageUpload,
    body: BinaryIO,
    *,
    actor,
    offset: object,
    length: object,
    client_address: str | None = None,
) -> StorageVolume | None:
    """`virsh vol-upload --sparse --offset OFFSET --length LENGTH`: the next part of an upload.

    Parts come in order: `offset` must be what the panel has received so far (409 with the
    expected offset otherwise, so a client that lost a response can resume). The first part is
    checked for a qcow2 that names other files (refused: the upload is aborted). Returns the
    finished volume after the last part, else None.
    """
    pool = upload.pool
    host = pool.host
    authorize(actor, host, "volume.upload", pool, client_address)
    if upload.requested_by_id != actor.pk:
        raise ServiceError(_("Only who started an upload may continue it."), status=403, code="forbidden")
    if offset != upload.received_bytes:
        raise conflict(
            _("This upload expects the part at offset %(expected)d.") % {"expected": upload.received_bytes},
            code="offset",
        )
    if isinstance(length, bool) or not isinstance(length, int) or not 0 < length <= MAX_PART_BYTES:
        raise invalid(
            _("A part is 1 to %(max)d bytes, sent with its Content-Length.") % {"max": MAX_PART_BYTES},
            code="invalid-size",
        )
    if upload.received_bytes + length > upload.size_bytes:
        raise invalid(
            _("The part goes past the %(size)d bytes this upload announced.") % {"size": upload.size_bytes},
            code="invalid-size",
        )
    head = body.read(min(CHUNK_BYTES, length))
    if upload.received_bytes == 0:
        try:
            refuse_unsafe_image(head)
        except ServiceError:
            abort_upload(upload, actor=actor, client_address=client_address, reason="unsafe image")
            raise
    chunks = itertools.chain([head], iter(lambda: body.read(CHUNK_BYTES), b""))
    try:
        virt_storage.write_volume_part(
            host.uri, pool.name, upload.name, chunks, offset=upload.received_bytes, length=length
        )
    except HypervisorError as error:
        if error.code == "invalid-argument":  # the body did not match its Content-Length
            raise invalid(error.message, code="invalid-size") from error
        if error.code in {"no-pool", "no-volume"}:  # the volume went away under us
            abort_upload(upload, actor=actor, client_address=client_address, reason=error.message)
        raise from_hypervisor(error, host_name=host.name) from error
    received = upload.received_bytes + length
    claimed = StorageUpload.objects.filter(pk=upload.pk, received_bytes=upload.received_bytes).update(
        received_bytes=received, updated_at=timezone.now()
    )
    if not claimed:  # the same part arrived twice at once: the other request counted it
        raise conflict(_("This part was already received."), code="offset")
    upload.received_bytes = received
    if received < upload.size_bytes:
        return None
    return _finish_upload(upload, actor=actor, client_address=client_address)


def _finish_upload(upload: StorageUpload, *, actor, client_address: str | None) -> StorageVolume:
    pool = upload.pool
    host = pool.host
    info = virt_storage.volume_info(host.uri, pool.name, upload.name)  # rescans: the host names the format
    if info is None or info.backing_path:
        abort_upload(upload, actor=actor, client_address=client_address, reason="backing file")
        raise invalid(_("The uploaded image refers to a backing file and was deleted again."), code="unsafe-image")
    resync_quietly(host, names=[pool.name])
    detail = {"pool": pool.name, "name": upload.name, "bytes": upload.size_bytes, "format": info.format}
    with transaction.atomic():
        upload.delete()
        volume = StorageVolume.objects.filter(pool=pool, name=upload.name).first()
        if volume is None:  # the sync failed: a row with what the host said, corrected by the next sync
            volume = StorageVolume.objects.create(
                pool=pool,
                name=info.name,
                path=info.path,
                type=info.type,
                format=info.format,
                capacity_bytes=info.capacity_bytes,
                allocation_bytes=info.allocation_bytes,
                physical_bytes=info.physical_bytes,
            )
        audit(actor, "volume.upload", volume, detail, client_address, message="finished")
    return volume


def abort_upload(upload: StorageUpload, *, actor, client_address: str | None = None, reason: str = "") -> None:
    """Stop an upload and delete its half-filled volume (`virsh vol-delete`)."""
    pool = upload.pool
    host = pool.host
    if actor is not None:
        authorize(actor, host, "volume.upload", pool, client_address)
    _delete_quietly(host, pool.name, upload.name)
    with transaction.atomic():
        record_event(
            actor=actor,
            verb="volume.upload",
            target=pool,
            result=AuditResult.FAILED,
            message=reason or "aborted",
            detail={"pool": pool.name, "name": upload.name, "received": upload.received_bytes},
            client_address=client_address,
        )
        upload.delete()
    resync_quietly(host, names=[pool.name])


def _delete_quietly(host: Host, pool_name: str, volume_name: str) -> None:
    with contextlib.suppress(HypervisorError):
        virt_storage.delete_volume(host.uri, pool_name, volume_name)


def reap_idle_uploads(*, host: Host | None = None, idle_seconds: float | None = None) -> list[str]:
    """Abort uploads that received nothing for `idle_seconds` (a closed tab, a lost client);
    returns their names. Runs when an upload starts on the host, and from the storage.reap task."""
    if idle_seconds is None:
        idle_seconds = getattr(settings, "KVMPANEL_STORAGE_UPLOAD_IDLE_SECONDS", DEFAULT_UPLOAD_IDLE_SECONDS)
    stale = StorageUpload.objects.filter(updated_at__lt=timezone.now() - timedelta(seconds=idle_seconds))
    if host is not None:
        stale = stale.filter(pool__host=host)
    reaped = []
    for upload in stale.select_related("pool__host"):
        abort_upload(upload, actor=None, reason=f"idle for more than {idle_seconds:.0f} s")
        reaped.append(upload.name)
    return reaped


def open_volume_download(
    volume: StorageVolume, *, actor, client_address: str | None = None
) -> virt_storage.VolumeDownload:
    """Start `virsh vol-download --sparse`: the caller streams `chunks()` and must `close()` it."""
    pool = volume.pool
    host = pool.host
    authorize(actor, host, "volume.download", volume, client_address)
    if pool.uploads.filter(name=volume.name).exists():
        raise conflict(_("%(name)s is still being uploaded.") % {"name": volume.name}, code="uploading")
    detail = {"pool": pool.name, "name": volume.name}
    download = on_host(
        host,
        lambda: virt_storage.open_download(host.uri, pool.name, volume.name),
        actor=actor,
        verb="volume.download",
        target=volume,
        detail=detail,
        client_address=client_address,
    )
    audit(actor, "volume.download", volume, detail | {"bytes": download.length}, client_address)
    return download
