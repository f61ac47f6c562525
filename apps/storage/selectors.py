"""Reads for the storage pages and API: inventory rows only, never the hypervisor."""

from dataclasses import dataclass

from django.db.models import QuerySet

from apps.accounts.permissions import has_privilege
from apps.hosts.models import Host
from apps.storage.models import HostStorage, StoragePool, StorageVolume

# The pages show a host's name and status only: leave its capability JSON columns undecoded.
_HOST_JSON = ("host__pools", "host__networks", "host__virtualization_flags")


def visible_pools(user) -> QuerySet[StoragePool]:
    return StoragePool.objects.restrict(user, "host.view").select_related("host").defer(*_HOST_JSON)


def visible_volumes(user) -> QuerySet[StorageVolume]:
    return StorageVolume.objects.restrict(user, "host.view").select_related("pool__host")


@dataclass(frozen=True)
class HostPools:
    host: Host
    pools: list[StoragePool]
    storage: HostStorage | None
    can_manage: bool


def pools_by_host(user) -> list[HostPools]:
    """Each host the user can see, with its pools (three queries whatever the counts)."""
    hosts = list(Host.objects.restrict(user, "host.view").defer("pools", "networks", "virtualization_flags"))
    pools: dict[int, list[StoragePool]] = {host.pk: [] for host in hosts}
    for pool in StoragePool.objects.filter(host__in=hosts).order_by("name"):
        pools[pool.host_id].append(pool)
    storage = {row.host_id: row for row in HostStorage.objects.filter(host__in=hosts)}
    return [
        HostPools(host, pools[host.pk], storage.get(host.pk), has_privilege(user, host, "storage.manage"))
        for host in hosts
    ]
