"""Live VM updates: what a page needs to update a VM in place (inventory columns only)."""

from typing import Any

from django.utils.formats import date_format
from django.utils.timezone import localtime

from apps.core.live import send_after_commit

VMS_GROUP = "vms"


def vm_group(vm_id: int) -> str:
    return f"vm-{vm_id}"


def vm_payload(vm) -> dict[str, Any]:
    return {
        "id": vm.pk,
        "name": vm.name,
        "host_id": vm.host_id,
        "state": vm.state,
        "state_reason": vm.state_reason,
        "missing": vm.missing,
        "vcpus_current": vm.vcpus_current,
        "vcpus_max": vm.vcpus_max,
        "memory_current_mib": vm.memory_current_mib,
        "memory_max_mib": vm.memory_max_mib,
        "autostart": vm.autostart,
        "addresses": vm.address_list,
        "observed_at": date_format(localtime(vm.observed_at), "DATETIME_FORMAT") if vm.observed_at else "",
        "deleted": False,
    }


def publish_vm(vm, *, deleted: bool = False) -> None:
    payload = vm_payload(vm) | {"deleted": deleted}
    send_after_commit([VMS_GROUP, vm_group(vm.pk)], {"type": "vm.changed", "vm_id": vm.pk, "payload": payload})
