"""Disk operations on a VM (issue 4): attach, detach, grow and CD-ROM media at once; convert and
move as jobs (seed §5.5 `qemu-img convert` + `virsh edit`, §5.6 move a disk and repoint the VM).

Every function authorizes with `vm.config.disk`, re-reads the domain from its host, refuses bad
input before the hypervisor sees it (sizes, names, targets, pool space), writes one audit event with
the equivalent virsh/qemu-img command, and refreshes the VM's inventory row afterwards. Disk paths
come only from storage pools, through the storage app's path rule (`new_volume_path`,
`volume_at_path`). A step that fails undoes what the operation created: a new volume whose attach
failed is deleted; a convert or move that fails or is cancelled deletes its copy and leaves the VM
on its old disk.
"""

import contextlib
import posixpath
import re
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from django.utils.translation import gettext as _

from apps.accounts.quotas import Usage, refuse_growth_over_quota
from apps.audit.choices import AuditResult
from apps.audit.services import record_event
from apps.core.errors import AccessDenied, ServiceError, from_hypervisor
from apps.hosts.inventory import sync_domain
from apps.jobs.choices import ACTIVE as ACTIVE_JOBS
from apps.jobs.models import Job
from apps.jobs.registry import JobKind, register
from apps.jobs.services import enqueue_job
from apps.storage.services import new_volume_path, volume_at_path
from apps.storage.sync import resync_quietly, resync_volumes_quietly
from apps.storage.validators import conflict, invalid, validate_capacity, validate_volume_format
from apps.vms.choices import PowerState
from apps.vms.models import VirtualMachine
from apps.vms.services import RUNNING, STOPPED, _fresh, require
from kvmpanel.virt import disks, storage
from kvmpanel.virt import snapshots as virt_snapshots
from kvmpanel.virt.disks import Disk
from kvmpanel.virt.errors import HypervisorError
from kvmpanel.virt.storage import VolumeInfo

T = TypeVar("T")
PRIVILEGE = "vm.config.disk"
TARGET_PATTERN = re.compile(r"^(vd|sd|hd)[a-z]{1,2}$")
ACTIVE_STATES = {*RUNNING, PowerState.PAUSED}
_KNOWN_SUFFIXES = (".qcow2", ".raw", ".img")


@dataclass(frozen=True)
class DiskChange:
    vm: VirtualMachine
    command: str  # the virsh / qemu-img equivalent, shown to the user
    target: str = ""


def _quote(*parts: object) -> str:
    return " ".join(shlex.quote(str(part)) for part in parts)


def _audit_refusal(actor, vm: VirtualMachine, verb: str, error: ServiceError | HypervisorError, client_address):
    failed = isinstance(error, HypervisorError)
    record_event(
        actor=actor,
        verb=verb,
        target=vm,
        result=AuditResult.FAILED if failed else AuditResult.REFUSED,
        message=error.message,
        client_address=client_address,
    )


def _audited(actor, vm: VirtualMachine, verb: str, work: Callable[[], "DiskChange"], *, client_address) -> "DiskChange":
    """Run `work` and write one audit event: refused (bad input, wrong state), failed (the hypervisor
    said no) or ok with the command that ran."""
    try:
        change = work()
    except AccessDenied:
        raise
    except (ServiceError, HypervisorError) as error:
        _audit_refusal(actor, vm, verb, error, client_address)
        if isinstance(error, HypervisorError):
            raise from_hypervisor(error, host_name=vm.host.name) from error
        raise
    detail = {"command": change.command, "target": change.target}
    record_event(actor=actor, verb=verb, target=vm, detail=detail, client_address=client_address)
    return change


# ---- validation shared by the operations and the job kinds ----


def validate_target(value: object) -> str:
    if not isinstance(value, str) or not TARGET_PATTERN.match(value):
        raise invalid(_("A disk target is a device name such as vdb, sdb or hdc."), code="invalid-target")
    return value


def _check_space(vm: VirtualMachine, pool: str, needed: int) -> None:
    available = storage.pool_info(vm.host.uri, pool).available_bytes
    if needed > available:
        raise invalid(
            _("Pool %(pool)s has only %(available)d bytes free; this needs %(needed)d.")
            % {"pool": pool, "available": available, "needed": needed},
            code="no-space",
        )


def _no_active_job(vm: VirtualMachine) -> None:
    active = Job.objects.filter(vm=vm, status__in=ACTIVE_JOBS).first()
    if active is not None:
        raise conflict(
            _("Another job (%(kind)s #%(id)s) is already running on this VM.") % {"kind": active.kind, "id": active.pk},
            code="job-active",
        )


def _where(vm: VirtualMachine, live: bool | None, persistent: bool | None) -> tuple[bool, bool]:
    """Which definitions to change: the running VM, the persistent one, or both (`--live`, `--config`).
    Unset means every definition the VM has."""
    running = vm.state in ACTIVE_STATES
    live = running if live is None else bool(live)
    persistent = vm.persistent if persistent is None else bool(persistent)
    if not (live or persistent):
        raise invalid(_("Choose the running VM (live), its configuration (persistent), or both."))
    if live and not running:
        raise conflict(
            _("The VM is not running, so nothing can change live; choose persistent only."), code="invalid-state"
        )
    if persistent and not vm.persistent:
        raise conflict(_("A transient VM has no persistent configuration; choose live only."), code="invalid-state")
    return live, persistent


def _prepare(vm: VirtualMachine, live: bool | None, persistent: bool | None) -> tuple[VirtualMachine, bool, bool]:
    """The VM as its host has it now, free of jobs, and which definitions the change goes to."""
    fresh = _fresh(vm)
    _no_active_job(fresh)
    return fresh, *_where(fresh, live, persistent)


def _flags(live: bool, persistent: bool) -> str:
    return " ".join(flag for flag, on in (("--live", live), ("--config", persistent)) if on)


def _disk(vm: VirtualMachine, target: str, *, inactive: bool = False, with_sizes: bool = True) -> Disk | None:
    listed = disks.list_disks(vm.host.uri, vm.uuid, inactive=inactive, with_sizes=with_sizes)
    return next((disk for disk in listed if disk.target == target), None)


def _find_disk(vm: VirtualMachine, target: str, *, inactive: bool = False, with_sizes: bool = True) -> Disk:
    found = _disk(vm, target, inactive=inactive, with_sizes=with_sizes)
    if found is None:
        raise invalid(_("The VM has no disk %(target)s.") % {"target": target}, code="no-disk")
    return found


def _free_target(vm: VirtualMachine, wanted: str) -> str:
    """`wanted` if it is free in both the running and the persistent definition, else the first free
    virtio name after vda (vdb, vdc, ...)."""
    used = {disk.target for disk in disks.list_disks(vm.host.uri, vm.uuid, with_sizes=False)}
    if vm.persistent:
        used |= {disk.target for disk in disks.list_disks(vm.host.uri, vm.uuid, inactive=True, with_sizes=False)}
    if wanted:
        if not validate_target(wanted).startswith("vd"):
            raise invalid(_("A virtio disk's target starts with vd (vdb, vdc, ...)."), code="invalid-target")
        if wanted in used:
            raise conflict(_("The VM already has a disk %(target)s.") % {"target": wanted}, code="target-in-use")
        return wanted
    for letter in "bcdefghijklmnopqrstuvwxyz":
        if f"vd{letter}" not in used:
            return f"vd{letter}"
    raise conflict(_("The VM has no free virtio disk name left (vdb-vdz)."), code="target-in-use")


def _pool_volume(vm: VirtualMachine, path: object) -> VolumeInfo:
    """The pool volume at a path a user gave (the storage app's rule: directly inside a pool), as
    the host sees it now (the storage inventory may not have caught up with a copy yet)."""
    pool, name = volume_at_path(vm.host, path)
    volume = storage.volume_info(vm.host.uri, pool, name)
    if volume is None:
        raise invalid(_("Pool %(pool)s has no volume named %(name)s.") % {"pool": pool, "name": name}, "no-volume")
    return volume


# ---- operations that finish at once ----


def attach_disk(
    vm: VirtualMachine,
    *,
    actor,
    pool: str = "",
    name: str = "",
    size_bytes: int | None = None,
    fmt: str = "qcow2",
    path: str = "",
    target: str = "",
    live: bool | None = None,
    persistent: bool | None = None,
    client_address: str | None = None,
) -> DiskChange:
    """Attach a virtio disk: a new sparse volume `name` of `size_bytes` in `pool` (`virsh
    vol-create-as`), or the existing pool volume at `path` when no size is given, if no VM uses it.
    The target is the next free vdX unless given. A new volume whose attach fails is deleted again."""
    require(actor, vm, PRIVILEGE)

    def work() -> DiskChange:
        fresh, on_live, on_config = _prepare(vm, live, persistent)
        uri, create = fresh.host.uri, ""
        if size_bytes is None:
            volume = _pool_volume(fresh, path)
            if volume.format not in disks.DISK_FORMATS:
                raise invalid(
                    _("%(name)s is a %(format)s image, not a disk; insert it into a CD-ROM drive instead.")
                    % {"name": volume.name, "format": volume.format},
                    code="invalid-format",
                )
            users = disks.volume_users(uri, volume.path)
            if users:
                raise conflict(
                    _("%(name)s is already used by %(vms)s.") % {"name": volume.name, "vms": ", ".join(users)},
                    code="volume-in-use",
                )
            refuse_growth_over_quota(fresh, Usage(disk_bytes=volume.capacity_bytes))
            disk_path, disk_format = volume.path, volume.format
        else:
            size = validate_capacity(size_bytes)
            disk_format = validate_volume_format(fmt)
            disk_path = new_volume_path(fresh.host, pool, name)
            _check_space(fresh, pool, size)
            refuse_growth_over_quota(fresh, Usage(disk_bytes=size))
            create = _quote("virsh", "vol-create-as", pool, name, size, "--format", disk_format) + " && "
        chosen = _free_target(fresh, target)
        if create:
            disk_path = storage.create_volume(uri, pool, name, capacity_bytes=size_bytes, fmt=disk_format)
        try:
            element = disks.disk_xml(path=disk_path, target=chosen, fmt=disk_format)
            disks.attach(uri, fresh.uuid, element, live=on_live, config=on_config)
        except HypervisorError:
            if create:
                with contextlib.suppress(HypervisorError):
                    storage.delete_volume(uri, pool, name)
            raise
        finally:
            if create:
                resync_quietly(fresh.host, names=[pool])
        command = create + _quote("virsh", "attach-disk", fresh.name, disk_path, chosen)
        command += f" --driver qemu --subdriver {disk_format} --targetbus virtio {_flags(on_live, on_config)}"
        return DiskChange(sync_domain(fresh.host, fresh.uuid) or fresh, command, chosen)

    return _audited(actor, vm, "vm.disk.attach", work, client_address=client_address)


def detach_disk(
    vm: VirtualMachine,
    target: str,
    *,
    actor,
    live: bool | None = None,
    persistent: bool | None = None,
    client_address: str | None = None,
) -> DiskChange:
    """`virsh detach-disk NAME TARGET [--live] [--config]`. The volume itself is kept. Unset `live` /
    `persistent` mean wherever the disk is (a disk attached live only, or for the next boot only)."""
    require(actor, vm, PRIVILEGE)

    def work() -> DiskChange:
        validate_target(target)
        fresh = _fresh(vm)
        found = {
            inactive: _disk(fresh, target, inactive=inactive, with_sizes=False)
            for inactive, has_it in ((False, fresh.state in ACTIVE_STATES), (True, fresh.persistent))
            if has_it
        }
        if not any(found.values()):
            raise invalid(_("The VM has no disk %(target)s.") % {"target": target}, code="no-disk")
        fresh, on_live, on_config = _prepare(
            fresh,
            bool(found.get(False)) if live is None else live,
            bool(found.get(True)) if persistent is None else persistent,
        )
        for inactive, wanted in ((False, on_live), (True, on_config)):
            disk = found.get(inactive) if wanted else None
            if wanted and disk is None:
                where = _("configuration") if inactive else _("running VM")
                raise invalid(
                    _("The %(where)s has no disk %(target)s.") % {"where": where, "target": target}, code="no-disk"
                )
            if disk is not None and disk.device != "disk":
                raise invalid(
                    _("%(target)s is a CD-ROM drive; eject its media instead.") % {"target": target}, code="no-disk"
                )
        disks.detach(fresh.host.uri, fresh.uuid, target, live=on_live, config=on_config)
        command = _quote("virsh", "detach-disk", fresh.name, target) + " " + _flags(on_live, on_config)
        return DiskChange(sync_domain(fresh.host, fresh.uuid) or fresh, command, target)

    return _audited(actor, vm, "vm.disk.detach", work, client_address=client_address)


def grow_disk(
    vm: VirtualMachine, target: str, size_bytes: int, *, actor, client_address: str | None = None
) -> DiskChange:
    """Grow a disk: `virsh blockresize` while running (the guest sees it at once), `virsh vol-resize`
    when shut off. Shrinking is refused (it destroys data), and so is growing past the pool's free
    space."""
    require(actor, vm, PRIVILEGE)

    def work() -> DiskChange:
        validate_target(target)
        size = validate_capacity(size_bytes)
        fresh = _fresh(vm)
        _no_active_job(fresh)
        running = fresh.state in ACTIVE_STATES
        if not running and fresh.state not in STOPPED:
            raise conflict(_("Wait until the VM has finished changing state."), code="invalid-state")
        disk = _find_disk(fresh, target)
        if disk.device != "disk":
            raise invalid(_("%(target)s is a CD-ROM drive.") % {"target": target}, code="no-disk")
        if size <= disk.capacity_bytes:
            raise invalid(
                _("Disks only grow: %(target)s has %(capacity)d bytes; shrinking would destroy data.")
                % {"target": target, "capacity": disk.capacity_bytes},
                code="invalid-size",
            )
        if not disk.pool:
            raise invalid(_("%(path)s is not in a storage pool.") % {"path": disk.source}, code="no-volume")
        _check_space(fresh, disk.pool, size - disk.capacity_bytes)
        refuse_growth_over_quota(fresh, Usage(disk_bytes=size - disk.capacity_bytes))
        if running:
            disks.grow_live(fresh.host.uri, fresh.uuid, target, size)
            command = _quote("virsh", "blockresize", fresh.name, target, f"{size}B")
        else:
            volume_name = posixpath.basename(disk.source)
            storage.resize_volume(fresh.host.uri, disk.pool, volume_name, size)
            resync_quietly(fresh.host, names=[disk.pool])
            command = _quote("virsh", "vol-resize", "--pool", disk.pool, volume_name, size)
        return DiskChange(sync_domain(fresh.host, fresh.uuid) or fresh, command, target)

    return _audited(actor, vm, "vm.disk.grow", work, client_address=client_address)


def change_media(
    vm: VirtualMachine, target: str, *, actor, path: str = "", client_address: str | None = None
) -> DiskChange:
    """Insert the pool volume at `path` (an ISO image) into CD-ROM drive `target`, or eject when `path`
    is empty: `virsh change-media NAME TARGET [PATH] --insert|--eject`, live and persistent."""
    require(actor, vm, PRIVILEGE)

    def work() -> DiskChange:
        validate_target(target)
        fresh, on_live, on_config = _prepare(vm, None, None)
        if _find_disk(fresh, target, inactive=not on_live).device != "cdrom":
            raise invalid(_("%(target)s is not a CD-ROM drive.") % {"target": target}, code="no-disk")
        medium = _pool_volume(fresh, path) if path else None
        if medium is not None and medium.format not in {"iso", "raw"}:
            raise invalid(
                _("%(name)s is a %(format)s disk image, not a CD-ROM image.")
                % {"name": medium.name, "format": medium.format},
                code="invalid-format",
            )
        iso = medium.path if medium is not None else ""
        disks.set_media(fresh.host.uri, fresh.uuid, target, iso, live=on_live, config=on_config)
        action = [iso, "--insert"] if iso else ["--eject"]
        command = _quote("virsh", "change-media", fresh.name, target, *action) + " " + _flags(on_live, on_config)
        return DiskChange(sync_domain(fresh.host, fresh.uuid) or fresh, command, target)

    return _audited(actor, vm, "vm.disk.media", work, client_address=client_address)


def describe_disks(vm: VirtualMachine, *, actor) -> tuple[Disk, ...]:
    """The VM's disks as its host sees them now, with pools and sizes (`virsh domblklist --details`,
    `virsh domblkinfo`)."""
    require(actor, vm, "vm.view")
    try:
        return disks.list_disks(vm.host.uri, vm.uuid)
    except HypervisorError as error:
        raise from_hypervisor(error, host_name=vm.host.name) from error


# ---- jobs: convert and move ----


def enqueue_vm_job(kind: str, vm: VirtualMachine, *, actor, params: dict[str, Any], client_address: str | None) -> Job:
    """`enqueue_job` on a VM, with a refused audit event when its validation says no."""
    try:
        return enqueue_job(kind, actor=actor, vm=vm, params=params, client_address=client_address)
    except AccessDenied:
        raise
    except ServiceError as error:
        _audit_refusal(actor, vm, kind, error, client_address)
        raise


def convert_disk(
    vm: VirtualMachine,
    target: str,
    *,
    actor,
    fmt: str,
    pool: str = "",
    name: str = "",
    delete_source: bool = False,
    client_address: str | None = None,
) -> Job:
    """Copy disk `target` into a new `fmt` volume (`qemu-img convert -O FMT`) and repoint the VM at it;
    the old volume is deleted only when asked and only after the repoint. Shut-off VMs only."""
    params = {"target": target, "format": fmt, "pool": pool, "name": name, "delete_source": delete_source}
    return enqueue_vm_job("vm.disk.convert", vm, actor=actor, params=params, client_address=client_address)


def move_disk(
    vm: VirtualMachine,
    target: str,
    *,
    actor,
    pool: str,
    name: str = "",
    delete_source: bool = False,
    client_address: str | None = None,
) -> Job:
    """Copy disk `target` into another pool (or under another name) and repoint the VM at it. A running
    VM's disk is mirrored live (`virsh blockcopy --pivot`)."""
    params = {"target": target, "pool": pool, "name": name, "delete_source": delete_source}
    return enqueue_vm_job("vm.disk.move", vm, actor=actor, params=params, client_address=client_address)


def _default_name(source_name: str, fmt: str) -> str:
    stem = next((source_name[: -len(s)] for s in _KNOWN_SUFFIXES if source_name.endswith(s)), source_name)
    return f"{stem}.{fmt}"


def _validate_copy(convert: bool) -> Callable[[VirtualMachine, dict[str, Any]], dict[str, Any]]:
    def validate(vm: VirtualMachine, params: dict[str, Any]) -> dict[str, Any]:
        try:
            return _checked_copy(vm, params, convert=convert)
        except HypervisorError as error:
            raise from_hypervisor(error, host_name=vm.host.name) from error

    return validate


def _checked_copy(vm: VirtualMachine, params: dict[str, Any], *, convert: bool) -> dict[str, Any]:
    target = validate_target(params.get("target"))
    delete_source = params.get("delete_source", False)
    if not isinstance(delete_source, bool):
        raise invalid(_("delete_source is true or false."))
    fresh = _fresh(vm)
    disk = _find_disk(fresh, target, with_sizes=False)  # the sizes come from its volume, just below
    if disk.device != "disk" or disk.readonly:
        raise invalid(_("Only writable disks can be converted or moved."), code="no-disk")
    source = _pool_volume(fresh, disk.source)
    if virt_snapshots.list_snapshots(fresh.host.uri, fresh.uuid):
        raise conflict(
            _("The VM has snapshots; they live inside its qcow2 files and would not be copied. Delete them first."),
            code="has-snapshots",
        )
    source_pool, _name = volume_at_path(fresh.host, source.path)
    if convert:
        fmt = validate_volume_format(params.get("format"))
        if fmt == disk.format:
            raise invalid(
                _("%(target)s is already %(format)s.") % {"target": target, "format": fmt}, code="invalid-format"
            )
        if fresh.state not in STOPPED:
            raise conflict(_("Shut the VM off before converting its disk."), code="invalid-state")
    else:
        fmt = disk.format if disk.format in disks.DISK_FORMATS else source.format
        if fresh.state not in STOPPED and fresh.state not in RUNNING:
            raise conflict(_("Move the disk of a running or shut-off VM."), code="invalid-state")
    pool = params.get("pool") or (source_pool if convert else "")
    name = params.get("name") or (_default_name(source.name, fmt) if convert else source.name)
    if (pool, name) == (source_pool, source.name):
        raise invalid(_("Choose another pool or name: that is where the disk already is."), code="same-volume")
    destination = new_volume_path(fresh.host, pool, name)
    live = not convert and fresh.state in RUNNING
    _check_space(fresh, pool, source.capacity_bytes if live else source.allocation_bytes)
    if live:
        command = _quote("virsh", "blockcopy", fresh.name, target, destination) + " --wait --verbose --pivot"
    else:
        command = _quote("qemu-img", "convert", "-p", "-f", source.format, "-O", fmt, source.path, destination)
        command += " && virsh edit " + shlex.quote(fresh.name)
    return {
        "target": target,
        "source": source.path,
        "pool": pool,
        "name": name,
        "format": fmt,
        "capacity_bytes": source.capacity_bytes,
        "delete_source": delete_source,
        "live": live,
        "command": command,
    }


def _reporter(ctx, phase: str) -> Callable[[int, int], None]:
    """Progress at most once a second, and only when the whole percent changed: each report is a write."""
    last = {"percent": -1, "at": 0.0}

    def report(done: int, total: int) -> None:
        percent = done * 100 // total if total else 0
        now = time.monotonic()
        if percent != last["percent"] and (now - last["at"] >= 1 or percent == 100):
            last.update(percent=percent, at=now)
            ctx.progress(percent=percent, bytes_done=done, bytes_total=total, phase=phase)

    return report


def _copy(ctx, uri: str, uuid: str, params: dict[str, Any]) -> str:
    """The new volume, holding the disk's data, with the VM pointing at it."""
    target, fmt = params["target"], params["format"]
    if not params["live"]:
        path = ctx.copy_volume(
            uri,
            params["source"],
            params["pool"],
            params["name"],
            fmt=fmt,
            progress=_reporter(ctx, "copy"),
            made=lambda _path: {"created": True},
        )
        ctx.check_cancel()
        if disks.is_active(uri, uuid):
            raise HypervisorError(_("The VM was started during the copy; its disk was left as it was."))
        ctx.progress(phase="repoint")
        disks.repoint(uri, uuid, target, path, fmt)
        return path
    capacity = params["capacity_bytes"]
    path = storage.create_volume(uri, params["pool"], params["name"], capacity_bytes=capacity, fmt=fmt)
    ctx.remember(created=True)
    try:
        disks.copy_live(uri, uuid, target, path, fmt, progress=_reporter(ctx, "mirror"), cancelled=ctx.cancel_requested)
    except HypervisorError as error:
        if error.code == "cancelled":
            ctx.check_cancel()  # raises: the job ends cancelled, not failed
        raise
    return path


def _run_copy(ctx) -> dict[str, Any]:
    vm, params = ctx.job.vm, ctx.job.params
    uri, uuid, target = vm.host.uri, vm.uuid, params["target"]
    current = _disk(vm, target, with_sizes=False)
    if current is None or current.source != params["source"]:
        raise HypervisorError(_("Disk %(target)s changed since the job was queued.") % {"target": target})
    if disks.is_active(uri, uuid) != params["live"]:
        raise HypervisorError(_("The VM was started or stopped since the job was queued; start the job again."))
    if storage.volume_info(uri, params["pool"], params["name"]) is not None:
        raise HypervisorError(_("Pool %(pool)s already holds a volume named %(name)s.") % params, code="exists")
    ctx.log("$ " + params["command"])
    ctx.progress(percent=0, bytes_done=0, bytes_total=params["capacity_bytes"], phase="copy")
    path = _copy(ctx, uri, uuid, params)
    ctx.remember(repointed=True)
    ctx.log(f"{target} now uses {path} ({params['format']})")
    deleted = False
    if params["delete_source"]:
        users = disks.volume_users(uri, params["source"])
        if users:
            ctx.log(f"Kept {params['source']}: still used by {', '.join(users)}")
        else:
            storage.delete_volume(uri, *volume_at_path(vm.host, params["source"]))
            deleted = True
            ctx.log(f"Deleted {params['source']}")
    sync_domain(vm.host, uuid)
    # The storage inventory (a cache) catches up once the job is over, and only for the volumes this
    # job made or deleted: their pools may hold hundreds of others.
    ctx.after_finish(partial(resync_volumes_quietly, vm.host, params["pool"], [params["name"]]))
    if deleted:
        source_pool, source_name = volume_at_path(vm.host, params["source"])
        ctx.after_finish(partial(resync_volumes_quietly, vm.host, source_pool, [source_name]))
    return {"target": target, "path": path, "format": params["format"], "source_deleted": deleted}


def _cleanup_copy(ctx) -> None:
    """After a failure or cancel: the VM stays on its old disk and the new volume goes."""
    vm, params = ctx.job.vm, ctx.job.params
    if ctx.state.get("repointed") or not ctx.state.get("created") or vm is None:
        return
    if params["live"]:
        disks.abort_copy(vm.host.uri, vm.uuid, params["target"])
    storage.delete_volume(vm.host.uri, params["pool"], params["name"])
    ctx.log(f"Deleted the copy {params['pool']}/{params['name']} again")
    resync_volumes_quietly(vm.host, params["pool"], [params["name"]])
    with contextlib.suppress(HypervisorError):
        sync_domain(vm.host, vm.uuid)


for _kind, _convert in (("vm.disk.convert", True), ("vm.disk.move", False)):
    register(
        JobKind(
            name=_kind,
            privilege=PRIVILEGE,
            target="vm",
            validate=_validate_copy(_convert),
            run=_run_copy,
            cleanup=_cleanup_copy,
        )
    )
