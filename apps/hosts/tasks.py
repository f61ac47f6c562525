"""Thin Celery tasks: take ids, call services."""

from celery import shared_task

from apps.core.errors import ServiceError
from apps.hosts import services
from apps.hosts.inventory import reconcile_host
from apps.hosts.models import Host
from kvmpanel.virt.errors import HypervisorError


@shared_task(name="hosts.refresh")
def refresh_host(host_id: int) -> dict:
    """Probe a host's capabilities and reconcile its VMs; the result says what was seen."""
    host = Host.objects.get(pk=host_id)
    try:
        services.refresh_host(host)
        changed = reconcile_host(host)
    except (ServiceError, HypervisorError) as error:
        return {"host": host.name, "status": "unreachable", "message": str(error)}
    return {"host": host.name, "status": host.status, "changed": changed, "vms": host.vms.filter(missing=False).count()}
