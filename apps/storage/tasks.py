"""Thin Celery tasks: take ids, call services."""

from celery import shared_task

from apps.core.errors import ServiceError
from apps.hosts.models import Host
from apps.storage import transfers
from apps.storage.sync import sync_pools
from kvmpanel.virt.errors import HypervisorError


@shared_task(name="storage.reap_uploads")
def reap_idle_uploads() -> list[str]:
    """Abort uploads nobody finished (a closed tab): their half-filled volumes are deleted."""
    return transfers.reap_idle_uploads()


@shared_task(name="storage.sync")
def sync_host_pools(host_id: int) -> dict:
    """Re-read one host's pools and volumes into the inventory."""
    host = Host.objects.get(pk=host_id)
    try:
        pools = sync_pools(host)
    except (ServiceError, HypervisorError) as error:
        return {"host": host.name, "status": "unreachable", "message": str(error)}
    return {"host": host.name, "pools": len(pools), "volumes": sum(pool.volumes.count() for pool in pools)}
