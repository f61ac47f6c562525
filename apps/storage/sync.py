"""The storage inventory's sync: libvirt's pools and volumes -> StoragePool / StorageVolume rows.

Runs after every storage write (for the pool written to, or only for the volumes written when the
writer knows them: `sync_volumes`), on host refresh (every pool) and on the Refresh actions (with a
rescan of each pool first). Rows of pools and volumes that are gone are
deleted: they are a cache with no history, grants or audit trail of their own.
"""

import logging
from collections.abc import Iterable

from django.db import transaction
from django.utils import timezone

from apps.hosts.models import Host
from apps.storage.models import HostStorage, StoragePool, StorageVolume
from kvmpanel.virt import storage as virt_storage
from kvmpanel.virt.errors import HypervisorError

log = logging.getLogger(__name__)

POOL_COLUMNS = (
    "uuid",
    "type",
    "path",
    "active",
    "autostart",
    "persistent",
    "capacity_bytes",
    "allocation_bytes",
    "available_bytes",
)
VOLUME_COLUMNS = ("path", "type", "format", "capacity_bytes", "allocation_bytes", "physical_bytes", "backing_path")


def sync_pools(host: Host, *, names: Iterable[str] | None = None, refresh: bool = False) -> list[StoragePool]:
    """Make the host's StoragePool and StorageVolume rows equal to what libvirt reports.

    `names` limits the sync to those pools (after a write to one pool); without it every pool is
    synced, rows of pools that no longer exist are deleted, and the host's supported pool types
    are recorded. `refresh=True` first rescans each active pool (`virsh pool-refresh`) so files
    made outside libvirt show up; a pool busy with an upload refuses that and is read as it is.
    Raises HypervisorError when the host cannot be reached (the rows stay as they were).
    """
    wanted = sorted(set(names)) if names is not None else None
    if refresh:
        for info in virt_storage.list_pools(host.uri, names=wanted, with_volumes=False):
            if info.active:
                try:
                    virt_storage.refresh_pool(host.uri, info.name)
                except HypervisorError as error:
                    if not error.permanent:
                        raise
                    log.info("pool %s on %s not refreshed: %s", info.name, host.name, error)
    listed_at = timezone.now()
    infos = virt_storage.list_pools(host.uri, names=wanted)
    pool_types = virt_storage.supported_pool_types(host.uri) if wanted is None else None
    now = timezone.now()
    with transaction.atomic():
        rows = StoragePool.objects.select_for_update().filter(host=host)
        if wanted is not None:
            rows = rows.filter(name__in=wanted)
        existing = {pool.name: pool for pool in rows}
        synced = [store_pool(host, info, current=existing.pop(info.name, None), now=now) for info in infos]
        # A pool written after this listing began (created meanwhile by a service) is not ours to
        # delete: the listing is older than that row.
        gone = [pool.pk for pool in existing.values() if pool.observed_at is None or pool.observed_at < listed_at]
        StoragePool.objects.filter(pk__in=gone).delete()
        if pool_types is not None:
            HostStorage.objects.update_or_create(host=host, defaults={"pool_types": list(pool_types), "synced_at": now})
    return synced


def store_pool(host: Host, info: virt_storage.PoolInfo, *, current: StoragePool | None = None, now=None) -> StoragePool:
    """Write one pool as libvirt reported it (and its volumes: none while it is inactive)."""
    with transaction.atomic():
        pool = current or StoragePool.objects.filter(host=host, name=info.name).first()
        pool = pool or StoragePool(host=host, name=info.name)
        for column in POOL_COLUMNS:
            setattr(pool, column, getattr(info, column))
        pool.observed_at = now or timezone.now()
        pool.save()
        _sync_volumes(pool, info.volumes)
    return pool


def _sync_volumes(pool: StoragePool, volumes: tuple[virt_storage.VolumeInfo, ...]) -> None:
    existing = {volume.name: volume for volume in pool.volumes.all()}
    changed, created = [], []
    for info in volumes:
        volume = existing.pop(info.name, None)
        if volume is None:
            created.append(StorageVolume(pool=pool, name=info.name, **{c: getattr(info, c) for c in VOLUME_COLUMNS}))
        elif any(getattr(volume, c) != getattr(info, c) for c in VOLUME_COLUMNS):
            for column in VOLUME_COLUMNS:
                setattr(volume, column, getattr(info, column))
            changed.append(volume)
    StorageVolume.objects.bulk_create(created)
    StorageVolume.objects.bulk_update(changed, VOLUME_COLUMNS)
    StorageVolume.objects.filter(pk__in=[volume.pk for volume in existing.values()]).delete()


def sync_volumes(host: Host, pool_name: str, volume_names: Iterable[str]) -> StoragePool | None:
    """After a write that made, changed or deleted the named volumes of one pool: that pool's row
    (its free space) and those volumes' rows, without listing the pool's other volumes (a pool of
    hundreds takes a libvirt call or two per volume to list). A pool without a row yet gets a full
    sync of that pool; a pool gone from the host is left to the next full sync. Raises
    HypervisorError when the host cannot be reached (the rows stay as they were)."""
    if not StoragePool.objects.filter(host=host, name=pool_name).exists():
        synced = sync_pools(host, names=[pool_name])
        return synced[0] if synced else None
    info = virt_storage.pool_info(host.uri, pool_name)
    volumes = {name: virt_storage.volume_info(host.uri, pool_name, name) for name in sorted(set(volume_names))}
    with transaction.atomic():
        pool = StoragePool.objects.select_for_update().filter(host=host, name=pool_name).first()
        if pool is None:  # deleted meanwhile by a full sync that saw the pool gone
            return None
        for column in POOL_COLUMNS:
            setattr(pool, column, getattr(info, column))
        pool.observed_at = timezone.now()
        pool.save()
        for name, volume in volumes.items():
            if volume is None or not info.active:
                StorageVolume.objects.filter(pool=pool, name=name).delete()
            else:
                StorageVolume.objects.update_or_create(
                    pool=pool, name=name, defaults={column: getattr(volume, column) for column in VOLUME_COLUMNS}
                )
    return pool


def resync_volumes_quietly(host: Host, pool_name: str, volume_names: Iterable[str]) -> None:
    """`sync_volumes` after a write that already succeeded (see `resync_quietly`)."""
    try:
        sync_volumes(host, pool_name, volume_names)
    except HypervisorError as error:
        log.warning("storage sync of %s/%s failed after a write: %s", host.name, pool_name, error)


def resync_quietly(host: Host, *, names: Iterable[str] | None = None) -> None:
    """Sync after a write that already succeeded: a failing sync must not turn it into an error
    (the rows catch up at the next sync)."""
    try:
        sync_pools(host, names=names)
    except HypervisorError as error:
        log.warning("storage sync of %s failed after a write: %s", host.name, error)
