"""Every write to storage pools and volumes, the pool sync, and the path rule other apps use.

Each write authorizes `storage.manage` on the pool's host, validates its input before libvirt sees
it, calls the virt layer, re-syncs the inventory rows of the pool it touched and writes an audit
event (a refused or failed attempt is audited too). Bad input raises ServiceError (400, or 409 for
a conflict with what exists) and changes nothing.

For the disk and VM-create code: `new_volume_path(host, pool, name)` is the one way to get a path for
a new disk, and `volume_at_path(host, path)` the one way to accept a path a user gave.
"""

import logging
import posixpath
from collections.abc import Callable
from typing import TypeVar

from django.db import transaction
from django.db.models import Model
from django.utils.translation import gettext as _

from apps.accounts.permissions import has_privilege
from apps.audit.choices import AuditResult
from apps.audit.services import audited_hypervisor_write, record_event
from apps.core.errors import AccessDenied, ServiceError, from_hypervisor
from apps.hosts.models import Host
from apps.storage.models import HostStorage, StoragePool, StorageUpload, StorageVolume
from apps.storage.sync import resync_quietly, store_pool, sync_pools
from apps.storage.validators import (
    CREATABLE_POOL_TYPES,
    MAX_PATH_CHARS,
    conflict,
    inside,
    invalid,
    validate_capacity,
    validate_pool_name,
    validate_pool_path,
    validate_volume_format,
    validate_volume_name,
)
from apps.vms.choices import ACTIVE_STATES
from kvmpanel.virt import storage as virt_storage
from kvmpanel.virt.errors import HypervisorError

log = logging.getLogger(__name__)
T = TypeVar("T")

PRIVILEGE = "storage.manage"


# ---- authorization and auditing ----


def authorize(actor, host: Host, verb: str, target: Model | None, client_address: str | None) -> None:
    if not has_privilege(actor, host, PRIVILEGE):
        record_event(
            actor=actor,
            verb=verb,
            target=target or host,
            result=AuditResult.DENIED,
            client_address=client_address,
        )
        raise AccessDenied()


def on_host(
    host: Host,
    operation: Callable[[], T],
    *,
    actor,
    verb: str,
    target: Model,
    detail: dict,
    client_address: str | None,
) -> T:
    """Run a hypervisor write; a failure is audited and becomes a ServiceError naming the host."""

    def forget_vanished(error: HypervisorError) -> None:
        if error.code in {"no-pool", "no-volume"}:
            resync_quietly(host)  # the row outlived the pool or volume: drop it

    return audited_hypervisor_write(
        operation,
        actor=actor,
        verb=verb,
        target=target,
        host_name=host.name,
        detail=detail,
        client_address=client_address,
        on_failure=forget_vanished,
    )


def audit(actor, verb: str, target: Model, detail: dict, client_address: str | None, message: str = "") -> None:
    record_event(actor=actor, verb=verb, target=target, detail=detail, message=message, client_address=client_address)


def refresh_host_pools(host: Host, *, actor, client_address: str | None = None) -> list[StoragePool]:
    """The storage page's "Refresh" for a whole host: rescan every active pool, then sync."""
    authorize(actor, host, "pool.refresh", host, client_address)
    try:
        pools = sync_pools(host, refresh=True)
    except HypervisorError as error:
        raise from_hypervisor(error, host_name=host.name) from error
    audit(actor, "pool.refresh", host, {"pools": [pool.name for pool in pools]}, client_address)
    return pools


# ---- the path rule (for disks, VM creation, clones) ----


def _active_pool(host: Host, pool_name: object) -> StoragePool:
    pool = StoragePool.objects.filter(host=host, name=pool_name).first() if isinstance(pool_name, str) else None
    if pool is None or not pool.active:
        raise invalid(
            _("Host %(host)s has no active storage pool named %(pool)s.") % {"host": host.name, "pool": pool_name},
            code="no-pool",
        )
    return pool


def new_volume_path(host: Host, pool_name: str, volume_name: str) -> str:
    """The path a new volume `volume_name` will have in pool `pool_name` on `host`.

    Refuses (ServiceError) an unknown or inactive pool (400, code "no-pool"), a bad name (400,
    "invalid-name") and a name that is already taken (409, "exists") by a volume or by any file in
    the pool's directory (the pool is rescanned on the host to see files made outside libvirt).
    Create the volume through libvirt afterwards (kvmpanel.virt.storage / volume_copy): libvirt
    itself refuses to overwrite an existing file, so a race between this check and the creation
    fails cleanly rather than clobbering.
    """
    name = validate_volume_name(volume_name)
    pool = _active_pool(host, pool_name)
    if pool.volumes.filter(name=name).exists():
        raise conflict(_("Pool %(pool)s already holds a volume named %(name)s.") % {"pool": pool.name, "name": name})
    try:
        found = virt_storage.volume_info(host.uri, pool.name, name)
    except HypervisorError as error:
        raise from_hypervisor(error, host_name=host.name) from error
    if found is not None:
        raise conflict(_("Pool %(pool)s already holds a volume named %(name)s.") % {"pool": pool.name, "name": name})
    return posixpath.join(pool.path, name)


def volume_at_path(host: Host, path: object, *, must_exist: bool = False) -> tuple[str, str]:
    """(pool name, volume name) of a disk path a user gave, or ServiceError (400, code "invalid-path").

    The path must be absolute, without '..', '.', '//' or a trailing '/', and lie directly in the
    directory of one of the host's storage pools (as last synced): anything else, such as /etc/shadow
    or a pool's subdirectory, is refused. With `must_exist=True` the volume must also be known in
    that pool and complete (400, code "no-volume", or "uploading" while an upload still fills it);
    for new files use `new_volume_path` instead.
    """
    if not isinstance(path, str) or not path.startswith("/") or len(path) > MAX_PATH_CHARS:
        raise invalid(_("A disk path must be an absolute path inside a storage pool."), code="invalid-path")
    parts = path.split("/")[1:]
    if any(part in {"", ".", ".."} for part in parts) or any(ord(c) < 32 for c in path):
        raise invalid(
            _("A disk path must not contain '..', '.', '//' or control characters: %(path)s") % {"path": path},
            code="invalid-path",
        )
    directory, name = path.rsplit("/", 1)
    directory = directory or "/"
    for pool in StoragePool.objects.filter(host=host).only("name", "path"):
        if pool.path and pool.path.rstrip("/") == directory.rstrip("/"):
            if must_exist and not pool.volumes.filter(name=name).exists():
                raise invalid(
                    _("Pool %(pool)s has no volume named %(name)s.") % {"pool": pool.name, "name": name},
                    code="no-volume",
                )
            if must_exist and pool.uploads.filter(name=name).exists():
                raise invalid(_("%(name)s is still being uploaded.") % {"name": name}, code="uploading")
            return pool.name, name
    raise invalid(
        _("%(path)s is not inside any storage pool of host %(host)s.") % {"path": path, "host": host.name},
        code="invalid-path",
    )


# ---- pools ----


def create_pool(
    host: Host,
    *,
    actor,
    name: object,
    path: object,
    pool_type: str = "dir",
    autostart: bool = True,
    client_address: str | None = None,
) -> StoragePool:
    """`virsh pool-define-as NAME dir --target PATH; pool-build; pool-start; pool-autostart`.

    Refused: another type than dir (the host's other supported types are named), a bad name or
    path, a name in use, and a directory that is, contains or lies inside another pool's.
    """
    authorize(actor, host, "pool.create", host, client_address)
    name = validate_pool_name(name)
    if pool_type not in CREATABLE_POOL_TYPES:
        supported = HostStorage.objects.filter(host=host).values_list("pool_types", flat=True).first() or []
        raise invalid(
            _("Only directory (dir) pools can be created here. This host's libvirt also supports: %(types)s.")
            % {"types": ", ".join(t for t in supported if t != "dir") or _("nothing else")},
            code="invalid-type",
        )
    path = validate_pool_path(path)
    detail = {"name": name, "type": pool_type, "path": path, "autostart": autostart}
    try:
        existing = virt_storage.list_pools(host.uri, with_volumes=False)
    except HypervisorError as error:
        raise from_hypervisor(error, host_name=host.name) from error
    for other in existing:
        if other.name == name:
            raise conflict(_("Host %(host)s already has a pool named %(name)s.") % {"host": host.name, "name": name})
        if other.path and (inside(path, other.path) or inside(other.path, path)):
            raise conflict(
                _("%(path)s overlaps pool %(pool)s at %(other)s: pools may not share or nest directories.")
                % {"path": path, "pool": other.name, "other": other.path},
                code="overlap",
            )
    info = on_host(
        host,
        lambda: virt_storage.create_dir_pool(host.uri, name, path, autostart=autostart),
        actor=actor,
        verb="pool.create",
        target=host,
        detail=detail,
        client_address=client_address,
    )
    with transaction.atomic():
        pool = store_pool(host, info)
        audit(actor, "pool.create", pool, detail, client_address)
    return pool


def _pool_write(
    pool: StoragePool,
    verb: str,
    virt_call: Callable[..., object],
    *args: object,
    actor,
    client_address: str | None,
) -> StoragePool:
    """`virt_call(uri, pool name, *args)` on the pool's host, then re-sync the pool and audit."""
    host = pool.host
    authorize(actor, host, verb, pool, client_address)
    detail = {"pool": pool.name, **({"arguments": list(args)} if args else {})}
    on_host(
        host,
        lambda: virt_call(host.uri, pool.name, *args),
        actor=actor,
        verb=verb,
        target=pool,
        detail=detail,
        client_address=client_address,
    )
    resync_quietly(host, names=[pool.name])
    audit(actor, verb, pool, detail, client_address)
    pool.refresh_from_db()
    return pool


def _require_active(pool: StoragePool, active: bool = True) -> None:
    if pool.active != active:
        message = _("Pool %(pool)s is not active; start it first.") if active else _("Pool %(pool)s is already active.")
        raise conflict(message % {"pool": pool.name}, code="invalid-state")


def start_pool(pool: StoragePool, *, actor, client_address: str | None = None) -> StoragePool:
    """`virsh pool-start NAME`."""
    _require_active(pool, False)
    return _pool_write(pool, "pool.start", virt_storage.start_pool, actor=actor, client_address=client_address)


def stop_pool(pool: StoragePool, *, actor, client_address: str | None = None) -> StoragePool:
    """`virsh pool-destroy NAME`: the pool goes inactive; its files stay, and VMs using them keep
    running (the panel just cannot list or change its volumes until it is started again)."""
    _require_active(pool)
    return _pool_write(pool, "pool.stop", virt_storage.stop_pool, actor=actor, client_address=client_address)


def set_pool_autostart(pool: StoragePool, enabled: bool, *, actor, client_address: str | None = None) -> StoragePool:
    """`virsh pool-autostart [--disable] NAME`."""
    return _pool_write(
        pool, "pool.autostart", virt_storage.set_pool_autostart, enabled, actor=actor, client_address=client_address
    )


def refresh_pool(pool: StoragePool, *, actor, client_address: str | None = None) -> StoragePool:
    """`virsh pool-refresh NAME`, then sync: files made outside the panel show up."""
    _require_active(pool)
    return _pool_write(pool, "pool.refresh", virt_storage.refresh_pool, actor=actor, client_address=client_address)


def delete_pool(pool: StoragePool, *, actor, client_address: str | None = None) -> None:
    """`virsh pool-destroy NAME; pool-delete NAME; pool-undefine NAME`, for an empty pool only
    (409, code "not-empty", otherwise): the empty directory goes with it."""
    host = pool.host
    authorize(actor, host, "pool.delete", pool, client_address)
    detail = {"pool": pool.name, "path": pool.path}
    try:
        on_host(
            host,
            lambda: virt_storage.delete_pool(host.uri, pool.name),
            actor=actor,
            verb="pool.delete",
            target=pool,
            detail=detail,
            client_address=client_address,
        )
    except ServiceError:
        resync_quietly(host, names=[pool.name])  # e.g. the volumes that made it "not empty"
        raise
    with transaction.atomic():
        audit(actor, "pool.delete", pool, detail, client_address)
        pool.delete()


# ---- volumes ----


def _vms_using(host: Host, paths: list[str], *, running_only: bool = False) -> list[str]:
    """Names of the host's VMs (from the inventory) with a disk or CD-ROM on one of `paths`."""
    if not paths:
        return []
    wanted = set(paths)
    vms = host.vms.filter(missing=False).only("name", "state", "disks")
    if running_only:
        vms = vms.filter(state__in=ACTIVE_STATES)
    return sorted(vm.name for vm in vms if any(disk.get("source") in wanted for disk in vm.disks))


def _require_room(live: virt_storage.PoolInfo, size: int) -> None:
    if size > live.available_bytes:
        raise invalid(
            _("Pool %(pool)s has only %(available)d bytes free; the volume needs %(size)d.")
            % {"pool": live.name, "available": live.available_bytes, "size": size},
            code="invalid-size",
        )


def check_room(pool: StoragePool, size: int) -> None:
    """Refuse `size` bytes more than the pool has free, as the host reports it now."""
    try:
        live = virt_storage.pool_info(pool.host.uri, pool.name)
    except HypervisorError as error:
        raise from_hypervisor(error, host_name=pool.host.name) from error
    if not live.active:
        raise conflict(_("Pool %(pool)s is not active; start it first.") % {"pool": pool.name}, code="invalid-state")
    _require_room(live, size)


def validate_new_volume(host: Host, params: dict) -> dict:
    """The checks every new volume passes, against the host as it is now (also the volume.create
    job's validation): name, format, size, an active pool with room, and a free name."""
    name = validate_volume_name(params.get("name"))
    fmt = validate_volume_format(params.get("format", "qcow2"))
    size = validate_capacity(params.get("capacity_bytes"))
    pool_name = params.get("pool")
    if not isinstance(pool_name, str) or not pool_name:
        raise invalid(_("Choose a storage pool."), code="no-pool")
    try:
        pools = {pool.name: pool for pool in virt_storage.list_pools(host.uri, names=[pool_name], with_volumes=False)}
        found = pools.get(pool_name)
        if found is None or not found.active:
            raise invalid(
                _("Host %(host)s has no active storage pool named %(pool)s.") % {"host": host.name, "pool": pool_name},
                code="no-pool",
            )
        _require_room(found, size)
        if virt_storage.volume_info(host.uri, pool_name, name) is not None:
            raise conflict(
                _("Pool %(pool)s already holds a volume named %(name)s.") % {"pool": pool_name, "name": name}
            )
    except HypervisorError as error:
        raise from_hypervisor(error, host_name=host.name) from error
    return {"pool": pool_name, "name": name, "format": fmt, "capacity_bytes": size}


def create_volume(
    pool: StoragePool,
    *,
    actor,
    name: object,
    capacity_bytes: object,
    fmt: object = "qcow2",
    client_address: str | None = None,
) -> StorageVolume:
    """`virsh vol-create-as POOL NAME SIZE --format FMT` (= `qemu-img create -f FMT PATH SIZE`),
    sparse: a new volume allocates almost nothing until written."""
    host = pool.host
    authorize(actor, host, "volume.create", pool, client_address)
    params = validate_new_volume(
        host, {"pool": pool.name, "name": name, "format": fmt, "capacity_bytes": capacity_bytes}
    )
    on_host(
        host,
        lambda: virt_storage.create_volume(
            host.uri, pool.name, params["name"], capacity_bytes=params["capacity_bytes"], fmt=params["format"]
        ),
        actor=actor,
        verb="volume.create",
        target=pool,
        detail=params,
        client_address=client_address,
    )
    resync_quietly(host, names=[pool.name])
    volume = StorageVolume.objects.filter(pool=pool, name=params["name"]).first()
    audit(actor, "volume.create", volume or pool, params, client_address)
    if volume is None:  # the sync failed: a row with what we know, corrected by the next sync
        volume = StorageVolume.objects.create(
            pool=pool,
            name=params["name"],
            path=posixpath.join(pool.path, params["name"]),
            format=params["format"],
            capacity_bytes=params["capacity_bytes"],
        )
    return volume


def _refuse_while_uploading(volume: StorageVolume) -> None:
    if StorageUpload.objects.filter(pool_id=volume.pool_id, name=volume.name).exists():
        raise conflict(
            _("%(name)s is still being uploaded; wait for the upload or abort it.") % {"name": volume.name},
            code="uploading",
        )


def resize_volume(
    volume: StorageVolume, capacity_bytes: object, *, actor, client_address: str | None = None
) -> StorageVolume:
    """`virsh vol-resize --pool POOL NAME SIZE`, growing only. Refused while a running VM uses the
    volume (resize a live disk from its VM, `virsh blockresize`, so the guest is told)."""
    pool = volume.pool
    host = pool.host
    authorize(actor, host, "volume.resize", volume, client_address)
    _refuse_while_uploading(volume)
    size = validate_capacity(capacity_bytes)
    if size <= volume.capacity_bytes:
        raise invalid(
            _("Volumes only grow: %(name)s is already %(current)d bytes; enter a larger size.")
            % {"name": volume.name, "current": volume.capacity_bytes},
            code="shrink",
        )
    users = _vms_using(host, [volume.path], running_only=True)
    if users:
        raise conflict(
            _("%(name)s is a disk of running VM %(vms)s: resize it from the VM's disk instead (virsh blockresize).")
            % {"name": volume.name, "vms": ", ".join(users)},
            code="in-use",
        )
    check_room(pool, size - volume.capacity_bytes)
    detail = {"pool": pool.name, "name": volume.name, "from": volume.capacity_bytes, "to": size}
    on_host(
        host,
        lambda: virt_storage.resize_volume(host.uri, pool.name, volume.name, size),
        actor=actor,
        verb="volume.resize",
        target=volume,
        detail=detail,
        client_address=client_address,
    )
    resync_quietly(host, names=[pool.name])
    audit(actor, "volume.resize", volume, detail, client_address)
    return StorageVolume.objects.filter(pk=volume.pk).select_related("pool__host").first() or volume


def delete_volume(volume: StorageVolume, *, actor, client_address: str | None = None) -> None:
    """`virsh vol-delete --pool POOL NAME`. Refused while any VM in the inventory has it as a disk
    or CD-ROM, or another volume uses it as its backing file."""
    pool = volume.pool
    host = pool.host
    authorize(actor, host, "volume.delete", volume, client_address)
    _refuse_while_uploading(volume)
    users = _vms_using(host, [volume.path])
    if users:
        raise conflict(
            _("%(name)s is a disk of VM %(vms)s: detach it or delete the VM with its disks first.")
            % {"name": volume.name, "vms": ", ".join(users)},
            code="in-use",
        )
    overlays = list(
        StorageVolume.objects.filter(pool__host=host, backing_path=volume.path).values_list("name", flat=True)
    )
    if overlays:
        raise conflict(
            _("%(name)s is the backing file of %(overlays)s; delete those first.")
            % {"name": volume.name, "overlays": ", ".join(overlays)},
            code="in-use",
        )
    detail = {"pool": pool.name, "name": volume.name, "path": volume.path}
    on_host(
        host,
        lambda: virt_storage.delete_volume(host.uri, pool.name, volume.name),
        actor=actor,
        verb="volume.delete",
        target=volume,
        detail=detail,
        client_address=client_address,
    )
    with transaction.atomic():
        audit(actor, "volume.delete", volume, detail, client_address)
        volume.delete()
    resync_quietly(host, names=[pool.name])
