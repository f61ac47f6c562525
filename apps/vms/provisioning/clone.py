"""`vm.clone`: virt-clone as a job (seed §5.4). The source must be shut off or paused; every
writable disk is copied into a pool with progress, CD-ROMs and read-only or shareable disks are
shared, and the clone is defined with a new name, UUID, MACs, console endpoint and serial log."""

import time
from dataclasses import dataclass
from functools import partial
from typing import Any

from django.utils.translation import gettext as _

from apps.accounts.permissions import has_privilege
from apps.accounts.quotas import reserve_clone
from apps.audit.choices import AuditResult
from apps.audit.services import record_event
from apps.core.errors import AccessDenied, ServiceError, from_hypervisor
from apps.hosts.inventory import sync_domain
from apps.hosts.models import Host
from apps.jobs.models import Job
from apps.jobs.registry import JobKind, register
from apps.jobs.services import enqueue_job
from apps.storage.sync import resync_volumes_quietly
from apps.vms.choices import PowerState
from apps.vms.models import VirtualMachine
from apps.vms.provisioning.common import (
    FieldError,
    active_pool,
    clean_vm_name,
    define_once,
    flag,
    free_volume_name,
    log_command,
    name_taken,
    new_uuid,
    pool_facts,
    refuse_taken_name,
    start_once,
    undo_what_was_made,
    within_pool,
)
from kvmpanel.virt import clone as virt_clone
from kvmpanel.virt import domain
from kvmpanel.virt.errors import HypervisorError

CLONE_NAME_ATTEMPTS = 100
CLONEABLE_STATES = {PowerState.SHUTOFF, PowerState.CRASHED, PowerState.PAUSED}


def auto_clone_name(host: Host, source_name: str) -> str:
    """virt-clone's `--auto-clone` name: `<name>-clone`, then `<name>-clone-1`, `-clone-2`..."""
    for attempt in range(CLONE_NAME_ATTEMPTS):
        suffix = "-clone" if attempt == 0 else f"-clone-{attempt}"
        candidate = source_name[: 63 - len(suffix)] + suffix
        if not name_taken(host, candidate):
            return candidate
    raise FieldError("name", _("No free clone name was found; give the clone a name."), status=409, code="exists")


@dataclass(frozen=True)
class ClonePlan:
    disks: list[virt_clone.CloneDisk]
    copies: list[dict[str, Any]]  # per copied disk: target, pool, name, bytes


def validate_clone(vm: VirtualMachine, params: dict[str, Any]) -> dict[str, Any]:
    """The `vm.clone` job's parameters: a stopped or paused source, a free name, room in the pool."""
    host = vm.host
    start = flag(params, "start")
    try:
        current = sync_domain(host, vm.uuid)
        if current is None or current.missing:
            raise ServiceError(_("The VM is missing from its host; it cannot be cloned."), status=409, code="missing")
        if current.state not in CLONEABLE_STATES:
            raise FieldError(
                "vm",
                _("%(name)s is %(state)s: shut the VM down or pause it first, then clone it.")
                % {"name": vm.name, "state": current.get_state_display()},
                status=409,
                code="invalid-state",
            )
        if params.get("name"):
            name = clean_vm_name(params["name"])
            refuse_taken_name(host, name)
        else:
            name = auto_clone_name(host, vm.name)
        plan = _plan_clone(vm, name, params.get("pool") or "")
    except HypervisorError as error:
        if error.code == "not-in-pool":
            raise FieldError("vm", error.message, code="not-in-pool") from error
        raise from_hypervisor(error, host_name=host.name) from error
    return {"name": name, "pool": params.get("pool") or "", "start": start, "copies": plan.copies}


def _plan_clone(vm: VirtualMachine, name: str, pool_name: str) -> ClonePlan:
    host = vm.host
    disks = virt_clone.clone_disks(host.uri, vm.uuid)
    facts = pool_facts(host)
    if pool_name:
        active_pool(host, facts, "pool", pool_name)
    copies: list[dict[str, Any]] = []
    needed: dict[str, int] = {}
    for disk in disks:
        if not disk.copy:
            continue
        target_pool = pool_name or disk.pool
        pool = active_pool(host, facts, "pool", target_pool)
        volume = virt_clone.clone_volume_name(disk.volume, name, len(copies))
        free_volume_name(host, "name", pool.name, volume)
        # A copy takes about what the source occupies (qemu-img keeps it sparse).
        needed[pool.name] = needed.get(pool.name, 0) + disk.allocation_bytes
        within_pool("pool", pool, needed[pool.name])
        copies.append({"target": disk.target, "pool": pool.name, "name": volume, "bytes": disk.allocation_bytes})
    return ClonePlan(disks=disks, copies=copies)


def clone_vm(vm: VirtualMachine, params: dict[str, Any], *, actor, client_address: str | None = None) -> Job:
    """Queue a `vm.clone` job (virt-clone): vm.clone on the source and vm.create on its host."""
    if has_privilege(actor, vm, "vm.clone") and not has_privilege(actor, vm.host, "vm.create"):
        record_event(actor=actor, verb="vm.clone", target=vm, result=AuditResult.DENIED, client_address=client_address)
        raise AccessDenied(_("Cloning makes a new VM: you need the vm.create privilege on the host too."))
    return enqueue_job("vm.clone", actor=actor, vm=vm, params=params, client_address=client_address)


def _run_clone(ctx) -> dict[str, Any]:
    source = ctx.job.vm
    host = source.host
    params = ctx.job.params
    name = params["name"]
    if not has_privilege(ctx.job.requested_by, host, "vm.create", fresh=True):
        raise AccessDenied(_("Cloning makes a new VM: you need the vm.create privilege on the host too."))
    _refuse_running_source(host, source)
    disks = {disk.target: disk for disk in virt_clone.clone_disks(host.uri, source.uuid) if disk.copy}
    planned = {copy["target"]: copy for copy in params["copies"]}
    if set(disks) != set(planned):
        raise HypervisorError(_("The VM's disks changed since the clone was asked for; ask again."))
    total = sum(disk.allocation_bytes for disk in disks.values()) or 1
    copied: dict[str, dict] = {entry["target"]: entry for entry in ctx.state.get("volumes", [])}
    done_before = sum(disks[target].allocation_bytes for target in copied)
    ctx.progress(percent=0, bytes_done=done_before, bytes_total=total, phase="copying disks")
    for target, disk in disks.items():
        if target in copied:
            continue
        ctx.check_cancel()
        plan = planned[target]
        log_command(
            ctx, "virsh", "vol-clone", "--pool", disk.pool, disk.volume, plan["name"], "--newpool", plan["pool"]
        )
        path = _copy(ctx, host, disk, plan, copied, done_before=done_before, total=total)
        done_before += disk.allocation_bytes
        ctx.log(f"Copied {disk.source} to {path}")
    # The storage inventory (a cache) learns of the copies once the job is over, and of only these
    # volumes: their pools may hold hundreds.
    for pool in sorted({entry["pool"] for entry in copied.values()}):
        names = [entry["name"] for entry in copied.values() if entry["pool"] == pool]
        ctx.after_finish(partial(resync_volumes_quietly, host, pool, names))
    # A cancel that came as the last copy ended still undoes it all; past the define, it is too late.
    ctx.check_cancel()
    # A source started during the copy leaves copies of a disk that was changing under them.
    _refuse_running_source(host, source)

    ctx.progress(percent=95, bytes_done=total, phase="defining")
    uuid = new_uuid(ctx)
    source_xml = domain.get_xml(host.uri, source.uuid, inactive=True)
    clone_xml = virt_clone.rewrite_for_clone(
        source_xml, name=name, uuid=uuid, disk_paths={target: entry["path"] for target, entry in copied.items()}
    )
    log_command(ctx, "virsh", "define", f"{name}.xml")
    clone = define_once(ctx, host, clone_xml)
    ctx.log(f"Defined {name} ({uuid}) with new MAC addresses")
    if params["start"]:
        clone = start_once(ctx, clone)
    ctx.progress(percent=100, phase="done")
    return {"vm": clone.pk, "name": name, "uuid": uuid, "volumes": [entry["path"] for entry in copied.values()]}


def _refuse_running_source(host: Host, source: VirtualMachine) -> None:
    state = domain.get_domain(host.uri, source.uuid, with_addresses=False).state
    if state not in CLONEABLE_STATES:
        raise ServiceError(
            _("%(name)s is running: shut the VM down or pause it first, then clone it.") % {"name": source.name},
            status=409,
            code="invalid-state",
        )


def _copy(
    ctx, host: Host, disk: virt_clone.CloneDisk, plan: dict, copied: dict[str, dict], *, done_before: int, total: int
) -> str:
    """Copy one disk; `copied` (what the job remembers as its volumes) gains it as the copy ends."""
    last = [0.0]

    def progress(done: int, _disk_total: int) -> None:
        now = time.monotonic()
        if now - last[0] >= 0.5:
            last[0] = now
            overall = done_before + done
            ctx.progress(percent=int(90 * overall / total), bytes_done=overall, phase=f"copying {disk.target}")

    def made(path: str) -> dict[str, Any]:
        copied[disk.target] = {"target": disk.target, "pool": plan["pool"], "name": plan["name"], "path": path}
        return {"volumes": list(copied.values())}

    # Recorded while it runs, so a dead worker's copy is stopped and deleted by the cleanup.
    return ctx.copy_volume(host.uri, disk.source, plan["pool"], plan["name"], progress=progress, made=made)


def _cleanup_clone(ctx) -> None:
    host = ctx.job.host or (ctx.job.vm.host if ctx.job.vm else None)
    if host is None:
        return
    undo_what_was_made(ctx, host, ctx.state.get("volumes", []))


VM_CLONE = register(
    JobKind(
        name="vm.clone",
        privilege="vm.clone",
        target="vm",
        validate=validate_clone,
        run=_run_clone,
        cleanup=_cleanup_clone,
        host_privilege="vm.create",
        reserve=reserve_clone,
    )
)
