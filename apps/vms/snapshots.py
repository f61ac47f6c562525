"""VM snapshots (issue 4; seed §5.7): internal qcow2 snapshots only, as jobs.

Create, revert and delete run in the worker (a running VM's RAM is saved or loaded, which takes a
moment); listing reads the host directly, because snapshots are not in the inventory. A VM with a
writable raw disk is refused with what to do about it; external snapshots are never made, and one
made outside the panel is listed but never reverted or deleted here (LAB.md §3.3).
"""

import shlex
from typing import Any

from django.utils.translation import gettext as _

from apps.core.errors import ServiceError, from_hypervisor
from apps.hosts.inventory import sync_domain
from apps.jobs.models import Job
from apps.jobs.registry import JobKind, register
from apps.vms.choices import PowerState
from apps.vms.disks import enqueue_vm_job
from apps.vms.models import VirtualMachine
from apps.vms.services import STOPPED, _fresh, require
from kvmpanel.virt import disks
from kvmpanel.virt import snapshots as virt_snapshots
from kvmpanel.virt.errors import HypervisorError
from kvmpanel.virt.snapshots import MAX_DESCRIPTION, Snapshot

SNAPSHOT_STATES = {PowerState.RUNNING, PowerState.BLOCKED, PowerState.PAUSED, *STOPPED}


def list_snapshots(vm: VirtualMachine, *, actor) -> tuple[Snapshot, ...]:
    """`virsh snapshot-list NAME --tree`: tree order (each snapshot's `depth`), current one marked."""
    require(actor, vm, "vm.view")
    try:
        return virt_snapshots.list_snapshots(vm.host.uri, vm.uuid)
    except HypervisorError as error:
        raise from_hypervisor(error, host_name=vm.host.name) from error


def create_snapshot(
    vm: VirtualMachine, *, actor, name: str, description: str = "", client_address: str | None = None
) -> Job:
    params = {"name": name, "description": description}
    return enqueue_vm_job("vm.snapshot.create", vm, actor=actor, params=params, client_address=client_address)


def revert_snapshot(vm: VirtualMachine, name: str, *, actor, client_address: str | None = None) -> Job:
    return enqueue_vm_job("vm.snapshot.revert", vm, actor=actor, params={"name": name}, client_address=client_address)


def delete_snapshot(vm: VirtualMachine, name: str, *, actor, client_address: str | None = None) -> Job:
    return enqueue_vm_job("vm.snapshot.delete", vm, actor=actor, params={"name": name}, client_address=client_address)


def _name(params: dict[str, Any]) -> str:
    try:
        return virt_snapshots.validate_snapshot_name(params.get("name"))
    except HypervisorError as error:
        raise ServiceError(error.message, status=400, code=error.code) from error


def _existing(vm: VirtualMachine, name: str) -> Snapshot:
    for snapshot in virt_snapshots.list_snapshots(vm.host.uri, vm.uuid):
        if snapshot.name == name:
            if snapshot.external:
                raise ServiceError(
                    _("Snapshot %(name)s is external (made with --disk-only outside the panel); it is left alone.")
                    % {"name": name},
                    status=409,
                    code="external-snapshot",
                )
            return snapshot
    raise ServiceError(_("The VM has no snapshot named %(name)s.") % {"name": name}, status=404, code="no-snapshot")


def _hypervisor_checked(check):
    def validate(vm: VirtualMachine, params: dict[str, Any]) -> dict[str, Any]:
        try:
            return check(vm, params)
        except HypervisorError as error:
            raise from_hypervisor(error, host_name=vm.host.name) from error

    return validate


@_hypervisor_checked
def _validate_create(vm: VirtualMachine, params: dict[str, Any]) -> dict[str, Any]:
    name = _name(params)
    description = params.get("description") or ""
    if not isinstance(description, str) or len(description) > MAX_DESCRIPTION:
        raise ServiceError(
            _("A description is text of at most %(count)d characters.") % {"count": MAX_DESCRIPTION},
            code="invalid-description",
        )
    fresh = _fresh(vm)
    if fresh.state not in SNAPSHOT_STATES:
        raise ServiceError(_("Wait until the VM has finished changing state."), status=409, code="invalid-state")
    refusal = virt_snapshots.raw_disk_refusal(disks.list_disks(fresh.host.uri, fresh.uuid, with_sizes=False))
    if refusal:
        raise ServiceError(refusal, status=409, code="raw-disk")
    if any(s.name == name for s in virt_snapshots.list_snapshots(fresh.host.uri, fresh.uuid)):
        raise ServiceError(
            _("The VM already has a snapshot named %(name)s.") % {"name": name}, status=409, code="exists"
        )
    command = f"virsh snapshot-create-as {shlex.quote(fresh.name)} {shlex.quote(name)}"
    if description:
        command += f" --description {shlex.quote(description)}"
    return {"name": name, "description": description.strip(), "command": command}


def _validate_existing(verb: str):
    """Validation for an action on a snapshot the VM has (revert, delete)."""

    @_hypervisor_checked
    def validate(vm: VirtualMachine, params: dict[str, Any]) -> dict[str, Any]:
        name = _name(params)
        fresh = _fresh(vm)
        _existing(fresh, name)
        return {"name": name, "command": f"virsh snapshot-{verb} {shlex.quote(fresh.name)} {shlex.quote(name)}"}

    return validate


def _run(action):
    def run(ctx) -> dict[str, Any]:
        vm, params = ctx.job.vm, ctx.job.params
        ctx.check_cancel()
        ctx.log("$ " + params["command"])
        ctx.progress(percent=0, phase="snapshot")
        extra = [params["description"]] if "description" in params else []  # create's only
        result = action(vm.host.uri, vm.uuid, params["name"], *extra) or {}
        refreshed = sync_domain(vm.host, vm.uuid) or vm
        ctx.log(f"Done; the VM is {refreshed.state}")
        return {"name": params["name"], "state": refreshed.state, **result}

    return run


def _create(uri: str, uuid: str, name: str, description: str) -> dict[str, Any]:
    snapshot = virt_snapshots.create_snapshot(uri, uuid, name, description)
    return {"memory": snapshot.memory, "snapshot_state": snapshot.state}


for _kind, _privilege, _validate, _action in (
    ("vm.snapshot.create", "vm.snapshot", _validate_create, _create),
    ("vm.snapshot.revert", "vm.snapshot.rollback", _validate_existing("revert"), virt_snapshots.revert_snapshot),
    ("vm.snapshot.delete", "vm.snapshot", _validate_existing("delete"), virt_snapshots.delete_snapshot),
):
    register(JobKind(name=_kind, privilege=_privilege, target="vm", validate=_validate, run=_run(_action)))
