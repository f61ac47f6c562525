"""Push inventory changes to open pages over Channels (after the database commit)."""

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from django.utils.formats import date_format
from django.utils.timezone import localtime

log = logging.getLogger(__name__)

VMS_GROUP = "vms"
HOSTS_GROUP = "hosts"


def vm_group(vm_id: int) -> str:
    return f"vm-{vm_id}"


def vm_payload(vm) -> dict[str, Any]:
    """What a page needs to update a VM in place; only inventory columns, no hypervisor calls."""
    return {
        "id": vm.pk,
        "name": vm.name,
        "host_id": vm.host_id,
        "state": vm.state,
        "state_label": str(vm.get_state_display()),
        "state_reason": vm.state_reason,
        "missing": vm.missing,
        "vcpus_current": vm.vcpus_current,
        "vcpus_max": vm.vcpus_max,
        "memory_current_mib": vm.memory_current_mib,
        "memory_max_mib": vm.memory_max_mib,
        "autostart": vm.autostart,
        "addresses": [a["address"] for a in vm.addresses],
        "observed_at": date_format(localtime(vm.observed_at), "DATETIME_FORMAT") if vm.observed_at else "",
        "deleted": False,
    }


def _send(groups: list[str], message: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        for group in groups:
            async_to_sync(layer.group_send)(group, message)
    except Exception:  # a push failure must never undo or fail the change itself
        log.warning("could not push %s to %s", message.get("type"), groups, exc_info=True)


def publish_vm(vm, *, deleted: bool = False) -> None:
    payload = vm_payload(vm) | {"deleted": deleted}
    message = {"type": "vm.changed", "vm_id": vm.pk, "payload": payload}
    transaction.on_commit(lambda: _send([VMS_GROUP, vm_group(vm.pk)], message))


def publish_host(host) -> None:
    message = {
        "type": "host.changed",
        "host_id": host.pk,
        "payload": {
            "id": host.pk,
            "status": host.status,
            "status_label": str(host.get_status_display()),
            "status_message": host.status_message,
        },
    }
    transaction.on_commit(lambda: _send([HOSTS_GROUP], message))
