"""Keep the inventory (VirtualMachine rows) equal to what the hosts report.

`reconcile_host` does a full pass with one batched listing per host; `sync_domain` refreshes one
domain after an event or an action. A domain that vanished is marked missing, never deleted: the
row keeps its history, grants and audit trail, and comes back if the domain does.
"""

from dataclasses import asdict

from django.db import transaction
from django.utils import timezone

from apps.hosts.models import Host
from apps.hosts.services import mark_host_reachable, mark_host_unreachable
from apps.vms.live import publish_vm
from apps.vms.models import VirtualMachine
from kvmpanel.virt import domain
from kvmpanel.virt.errors import HypervisorError
from kvmpanel.virt.types import DomainSummary


def _columns(summary: DomainSummary) -> dict:
    return {
        "name": summary.name,
        "state": summary.state,
        "state_reason": summary.reason,
        "vcpus_current": summary.vcpus_current,
        "vcpus_max": summary.vcpus_max,
        "memory_current_kib": summary.memory_current_kib,
        "memory_max_kib": summary.memory_max_kib,
        "autostart": summary.autostart,
        "persistent": summary.persistent,
        "disks": [asdict(d) for d in summary.disks],
        "nics": [asdict(n) for n in summary.nics],
        "addresses": [asdict(a) for a in summary.addresses],
        "console": summary.console.describe() if summary.console else "",
        "agent_connected": summary.agent_connected,
        "missing": False,
    }


def apply_summary(
    host: Host, summary: DomainSummary, *, owner=None, current: VirtualMachine | None = None, lock: bool = True
) -> tuple[VirtualMachine, bool]:
    """Write one domain's observed state; publish it when anything a page shows changed.

    An unchanged row is not rewritten (a reconcile of 1,000 quiet VMs writes nothing but one bulk
    observed_at update). `current` is the row when the caller already loaded it.
    """
    columns = _columns(summary)
    now = timezone.now()
    with transaction.atomic():
        vm = current
        if vm is None:
            rows = VirtualMachine.objects.select_for_update() if lock else VirtualMachine.objects
            vm = rows.filter(host=host, uuid=summary.uuid).first()
        if vm is None:
            vm = VirtualMachine.objects.create(host=host, uuid=summary.uuid, owner=owner, observed_at=now, **columns)
            changed = True
        else:
            changed = vm.missing_since is not None or any(getattr(vm, f) != v for f, v in columns.items())
            if changed:
                for field, value in columns.items():
                    setattr(vm, field, value)
                vm.observed_at = now
                vm.missing_since = None
                vm.save(update_fields=[*columns, "observed_at", "missing_since"])
            elif current is None:
                VirtualMachine.objects.filter(pk=vm.pk).update(observed_at=now)  # (reconcile does this in bulk)
        if changed:
            publish_vm(vm)
    return vm, changed


def mark_missing(vm: VirtualMachine) -> None:
    with transaction.atomic():
        updated = VirtualMachine.objects.filter(pk=vm.pk, missing=False).update(
            missing=True, missing_since=timezone.now(), state="nostate", state_reason="missing"
        )
        if updated:
            vm.refresh_from_db()
            publish_vm(vm)


def sync_domain(host: Host, uuid: str) -> VirtualMachine | None:
    """Refresh one domain from its host (after an event or an action)."""
    try:
        summary = domain.get_domain(host.uri, uuid)
    except HypervisorError as error:
        if error.code == "no-domain":
            vm = VirtualMachine.objects.filter(host=host, uuid=uuid).first()
            if vm is not None:
                mark_missing(vm)
            return vm
        raise
    vm, _changed = apply_summary(host, summary)
    return vm


def reconcile_host(host: Host) -> int:
    """One full pass over a host; returns how many rows changed. Marks the host up or unreachable."""
    try:
        summaries = domain.list_domains(host.uri)
    except HypervisorError as error:
        if not error.permanent:
            mark_host_unreachable(host, error.message)
        raise
    mark_host_reachable(host)
    known = {vm.uuid: vm for vm in VirtualMachine.objects.filter(host=host)}
    seen = set()
    changed = 0
    for summary in summaries:
        seen.add(summary.uuid)
        _vm, was_changed = apply_summary(host, summary, current=known.get(summary.uuid), lock=False)
        changed += was_changed
    VirtualMachine.objects.filter(host=host, uuid__in=seen).update(observed_at=timezone.now())
    for vm in VirtualMachine.objects.filter(host=host, missing=False).exclude(uuid__in=seen):
        mark_missing(vm)
        changed += 1
    return changed
