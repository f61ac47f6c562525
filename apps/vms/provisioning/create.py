"""`vm.create`: virt-install as a job (seed §3.3). Create the disk volume, define the VM with
hot-plug-ready hardware, start it; in install mode wait for the installer to power the VM off, eject
the media and boot the installed system from its disk."""

import shlex
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.utils.translation import gettext as _

from apps.accounts.projects import may_create_on
from apps.accounts.quotas import reserve_new_vm
from apps.core.errors import from_hypervisor
from apps.hosts.inventory import sync_domain
from apps.hosts.models import Host
from apps.jobs.models import Job
from apps.jobs.registry import JobKind, register
from apps.jobs.services import enqueue_job
from apps.storage.models import HostStorage, StoragePool, StorageVolume
from apps.storage.sync import resync_quietly
from apps.vms.models import VirtualMachine
from apps.vms.os_variants import DEFAULT_VARIANT, OS_VARIANTS
from apps.vms.provisioning.common import (
    MIB,
    FieldError,
    HostFacts,
    active_pool,
    clean_vm_name,
    define_once,
    flag,
    free_volume_name,
    host_facts,
    log_command,
    new_uuid,
    refuse_taken_name,
    start_once,
    undo_what_was_made,
    wait_for_state,
    whole_number,
    within_pool,
)
from kvmpanel.virt import domain, storage
from kvmpanel.virt import xml as domain_xml
from kvmpanel.virt.errors import HypervisorError

MIN_MEMORY_MIB = 32
MAX_VCPUS = 255  # QEMU's limit for i440fx, and within q35's
VCPU_OVERCOMMIT = 4  # at most this many vCPUs per host CPU may be defined (max vCPUs), at least 8
MIN_DISK_BYTES = MIB
MAX_DISK_BYTES = 64 << 40
MIN_INSTALL_SECONDS, MAX_INSTALL_SECONDS = 30, 24 * 3600
SERIAL_LOG = "/var/log/libvirt/qemu/{name}-serial.log"
VOLUME_EXTENSIONS = {"qcow2": "qcow2", "raw": "img"}
VIRT_TYPES = ("kvm", "qemu")


def disk_volume_name(name: str, fmt: str) -> str:
    return f"{name}.{VOLUME_EXTENSIONS[fmt]}"


def _choice(params: dict, field: str, default: str, choices: tuple[str, ...]) -> str:
    value = params.get(field) or default
    if value not in choices:
        raise FieldError(
            field, _("%(field)s must be one of: %(choices)s.") % {"field": field, "choices": ", ".join(choices)}
        )
    return value


def validate_create(host: Host, params: dict[str, Any]) -> dict[str, Any]:
    """The `vm.create` job's parameters, checked against the host as it is now."""
    name = clean_vm_name(params.get("name"))
    variant_key = params.get("os_variant") or DEFAULT_VARIANT
    if variant_key not in OS_VARIANTS:
        raise FieldError("os_variant", _("Unknown OS variant %(value)s.") % {"value": variant_key})
    variant = OS_VARIANTS[variant_key]
    machine = _choice(params, "machine", variant.machine, domain_xml.MACHINE_TYPES)
    disk_bus = _choice(params, "disk_bus", variant.disk_bus, domain_xml.MACHINE_DISK_BUSES[machine])
    nic_model = _choice(params, "nic_model", variant.nic_model, domain_xml.NIC_MODELS)
    disk_format = _choice(params, "disk_format", "qcow2", domain_xml.DISK_FORMATS)
    # virt-install's --virt-type: KVM where the host offers it, else (or by choice) TCG emulation.
    virt_type = _choice(params, "virt_type", "kvm" if host.kvm_usable else "qemu", VIRT_TYPES)
    if virt_type == "kvm" and not host.kvm_usable:
        raise FieldError(
            "virt_type", _("Host %(host)s has no usable KVM: choose qemu (TCG emulation).") % {"host": host.name}
        )
    install = flag(params, "install")
    try:
        facts = host_facts(host)
        cpus = max(facts.cpu_count, 1)
        vcpus = whole_number(params, "vcpus", _("vCPUs"), default=variant.vcpus, minimum=1, maximum=cpus)
        max_vcpus = whole_number(
            params,
            "max_vcpus",
            _("Maximum vCPUs"),
            default=max(variant.max_vcpus, vcpus),
            minimum=vcpus,
            maximum=min(MAX_VCPUS, max(8, VCPU_OVERCOMMIT * cpus)),
        )
        host_memory = max(facts.memory_mib, MIN_MEMORY_MIB)
        max_memory = whole_number(
            params,
            "max_memory_mib",
            _("Maximum memory (MiB)"),
            default=min(max(variant.max_memory_mib, _int_or(params.get("memory_mib"), 0)), host_memory),
            minimum=MIN_MEMORY_MIB,
            maximum=host_memory,
        )
        memory = whole_number(
            params,
            "memory_mib",
            _("Memory (MiB)"),
            default=min(variant.memory_mib, max_memory),
            minimum=MIN_MEMORY_MIB,
            maximum=max_memory,
        )
        disk_pool = active_pool(host, facts, "disk_pool", params.get("disk_pool"))
        disk_bytes = whole_number(
            params,
            "disk_size_bytes",
            _("Disk size (bytes)"),
            default=variant.disk_gib << 30,
            minimum=MIN_DISK_BYTES,
            maximum=MAX_DISK_BYTES,
        )
        within_pool("disk_size_bytes", disk_pool, disk_bytes)
        iso_pool, iso_volume, iso_path = _clean_iso(host, facts, params)
        if install and not iso_path:
            raise FieldError("iso_volume", _("Install mode needs an installer ISO."), code="invalid-iso")
        network = params.get("network") or ""
        if network:
            found = facts.networks.get(network) if isinstance(network, str) else None
            if found is None or not found.active:
                raise FieldError(
                    "network",
                    _("Host %(host)s has no active network named %(network)s.")
                    % {"host": host.name, "network": network},
                    code="invalid-network",
                )
        refuse_taken_name(host, name)
        volume_name = disk_volume_name(name, disk_format)
        free_volume_name(host, "name", disk_pool.name, volume_name)
    except HypervisorError as error:
        raise from_hypervisor(error, host_name=host.name) from error
    default_timeout = settings.KVMPANEL_INSTALL_TIMEOUT_SECONDS
    timeout = whole_number(
        params,
        "install_timeout_seconds",
        _("Install time limit (seconds)"),
        default=default_timeout,
        minimum=MIN_INSTALL_SECONDS,
        maximum=MAX_INSTALL_SECONDS,
    )
    return {
        "name": name,
        "os_variant": variant.key,
        "machine": machine,
        "disk_bus": disk_bus,
        "nic_model": nic_model,
        "clock_offset": variant.clock_offset,
        "virt_type": virt_type,
        "vcpus": vcpus,
        "max_vcpus": max_vcpus,
        "memory_mib": memory,
        "max_memory_mib": max_memory,
        "disk_pool": disk_pool.name,
        "disk_size_bytes": disk_bytes,
        "disk_format": disk_format,
        "disk_volume": volume_name,
        "iso_pool": iso_pool,
        "iso_volume": iso_volume,
        "iso_path": iso_path,
        "network": network,
        "install": install,
        "install_timeout_seconds": timeout,
        # Checked with the actor's rights and the project's quota by reserve_new_vm (JobKind.reserve).
        "project": params.get("project") or None,
    }


def _int_or(value: object, fallback: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else fallback


def _clean_iso(host: Host, facts: HostFacts, params: dict) -> tuple[str, str, str]:
    iso_pool, iso_volume = params.get("iso_pool") or "", params.get("iso_volume") or ""
    if not iso_pool and not iso_volume:
        return "", "", ""
    if not iso_volume or not isinstance(iso_volume, str):
        raise FieldError("iso_volume", _("Choose the ISO volume in pool %(pool)s.") % {"pool": iso_pool})
    pool = active_pool(host, facts, "iso_pool", iso_pool)
    if "/" in iso_volume or iso_volume in {".", ".."}:
        raise FieldError("iso_volume", _("Give the ISO's volume name in its pool, not a path."), code="invalid-iso")
    path = storage.find_volume_in_pool(host.uri, pool.name, iso_volume)
    if path is None:
        raise FieldError(
            "iso_volume",
            _("Pool %(pool)s holds no volume named %(name)s.") % {"pool": pool.name, "name": iso_volume},
            code="invalid-iso",
        )
    return pool.name, iso_volume, path


def wizard_choices(host: Host) -> tuple[list[str], list[tuple[str, str]]]:
    """The host's active pools and the ISO images in them, from the storage inventory (no libvirt
    call while the wizard renders, except once for a host whose storage was never synced)."""
    if not HostStorage.objects.filter(host=host).exists():
        resync_quietly(host)
    pools = list(StoragePool.objects.filter(host=host, active=True).order_by("name").values_list("name", flat=True))
    isos = (
        StorageVolume.objects.filter(pool__host=host, pool__active=True)
        .filter(Q(format="iso") | Q(name__iendswith=".iso"))
        .order_by("pool__name", "name")
        .values_list("pool__name", "name")
    )
    return pools, list(isos)


def build_spec(
    params: dict[str, Any], *, host: Host, disk_path: str, uuid: str, installing: bool
) -> domain_xml.DomainSpec:
    return domain_xml.DomainSpec(
        name=params["name"],
        uuid=uuid,
        memory_mib=params["memory_mib"],
        max_memory_mib=params["max_memory_mib"],
        vcpus=params["vcpus"],
        max_vcpus=params["max_vcpus"],
        disk_path=disk_path,
        disk_format=params["disk_format"],
        disk_bus=params["disk_bus"],
        cdrom_path=params["iso_path"],
        network=params["network"],
        nic_model=params["nic_model"],
        machine=params["machine"],
        domain_type=params["virt_type"],
        cpu_mode="host-model" if params["virt_type"] == "kvm" else "",
        clock_offset=params["clock_offset"],
        tablet=True,
        serial_log=SERIAL_LOG.format(name=params["name"]),
        on_reboot="destroy" if installing else "restart",
    )


def create_commands(params: dict[str, Any]) -> list[str]:
    """The equivalent command lines: `virsh vol-create-as` and `virt-install` (seed §3.3).

    Memory is written out as libvirt stores it: the handbook's `--memory 2048,maxmemory=4096` is a
    balloon from 2048 MiB up to 4096 MiB, which virt-install spells `--memory 4096,currentMemory=2048`.
    """
    name = params["name"]
    pool, volume = params["disk_pool"], params["disk_volume"]
    create_volume = [
        "virsh",
        "vol-create-as",
        pool,
        volume,
        f"{params['disk_size_bytes']}b",
        "--format",
        params["disk_format"],
    ]
    install = [
        "virt-install",
        "--virt-type",
        params["virt_type"],
        "--name",
        name,
        "--os-variant",
        OS_VARIANTS[params["os_variant"]].osinfo,
        "--machine",
        params["machine"],
        "--memory",
        f"{params['max_memory_mib']},currentMemory={params['memory_mib']}",
        "--vcpus",
        f"{params['vcpus']},maxvcpus={params['max_vcpus']}",
        "--disk",
        f"vol={pool}/{volume},bus={params['disk_bus']},boot.order=1",
    ]
    if params["iso_path"]:
        if params["install"]:
            install += ["--cdrom", params["iso_path"]]
        else:
            install += ["--disk", f"path={params['iso_path']},device=cdrom,boot.order=2", "--import"]
    if params["network"]:
        install += ["--network", f"network={params['network']},model={params['nic_model']}"]
    else:
        install += ["--network", "none"]
    install += ["--graphics", "vnc,listen=socket", "--serial", f"pty,log.file={SERIAL_LOG.format(name=name)}"]
    install += ["--wait", "-1"] if params["install"] else ["--noautoconsole"]
    return [shlex.join(create_volume), shlex.join(install)]


def may_create_vm(user, host: Host, params: dict[str, Any], fresh: bool) -> bool:
    """vm.create on the host, or on the requested project when the host is in its placement."""
    project = params.get("project")
    project_id = int(project) if isinstance(project, int | str) and str(project).isdigit() else None
    return may_create_on(user, host, project_id, fresh=fresh)


def create_vm(host: Host, params: dict[str, Any], *, actor, client_address: str | None = None) -> Job:
    """Queue a `vm.create` job (virt-install): authorized (may_create_vm) and validated first."""
    return enqueue_job("vm.create", actor=actor, host=host, params=params, client_address=client_address)


def _run_create(ctx) -> dict[str, Any]:
    params = ctx.job.params
    host = ctx.job.host
    name = params["name"]
    ctx.progress(percent=1, phase="creating disk")
    disk_path = _ensure_disk(ctx, host, params)
    ctx.check_cancel()

    ctx.progress(percent=15, phase="defining")
    uuid = new_uuid(ctx)
    spec = build_spec(params, host=host, disk_path=disk_path, uuid=uuid, installing=params["install"])
    log_command(ctx, "virsh", "define", f"{name}.xml")
    vm = define_once(ctx, host, domain_xml.build_domain_xml(spec))
    # The new VM is this job's until it ends: another job on it is refused meanwhile (one active
    # job per VM), and the job page links to it.
    Job.objects.filter(pk=ctx.job.pk).update(vm=vm)
    ctx.job.vm = vm
    ctx.log(f"Defined {name} ({uuid})")
    ctx.check_cancel()

    ctx.progress(percent=25, phase="starting")
    vm = start_once(ctx, vm)
    if params["install"]:
        vm = _install(ctx, vm, timeout=params["install_timeout_seconds"])
    ctx.progress(percent=100, phase="running")
    ctx.log(f"{name} is running")
    return {"vm": vm.pk, "name": name, "uuid": uuid, "disk": disk_path, "installed": params["install"]}


def _ensure_disk(ctx, host: Host, params: dict) -> str:
    pool, volume = params["disk_pool"], params["disk_volume"]
    existing = storage.find_volume_in_pool(host.uri, pool, volume)
    if existing is not None:
        if ctx.state.get("volume"):
            return existing  # made by this job before (a second run of the step)
        raise HypervisorError(
            _("Pool %(pool)s already holds a volume named %(name)s.") % {"pool": pool, "name": volume}, code="exists"
        )
    log_command(
        ctx, "virsh", "vol-create-as", pool, volume, f"{params['disk_size_bytes']}b", "--format", params["disk_format"]
    )
    path = storage.create_volume(
        host.uri, pool, volume, capacity_bytes=params["disk_size_bytes"], fmt=params["disk_format"]
    )
    ctx.remember(volume={"pool": pool, "name": volume})
    resync_quietly(host, names=[pool])  # the storage pages show the new volume
    ctx.log(f"Created {path}")
    return path


def _install(ctx, vm: VirtualMachine, *, timeout: int) -> VirtualMachine:
    """Wait for the installer to power the VM off, eject the media, boot from the disk."""
    host = vm.host
    ctx.progress(percent=30, phase="installing")
    ctx.log(f"Installing: waiting up to {timeout} s for the installer to power the VM off")
    last_report = [0.0]

    def creep(elapsed: float) -> None:
        if elapsed - last_report[0] >= 2:
            last_report[0] = elapsed
            # An installer reports nothing to the host: move on a curve that never reaches the end.
            ctx.progress(percent=30 + int(50 * elapsed / (elapsed + 60)), phase="installing")

    state = wait_for_state(ctx, host, vm.uuid, {"shutoff", "crashed"}, timeout=timeout, on_wait=creep)
    summary = domain.get_domain(host.uri, vm.uuid, with_addresses=False)
    if state == "crashed" or summary.reason in {"crashed", "failed"}:
        raise HypervisorError(_("The installer crashed (the VM stopped: %(reason)s).") % {"reason": summary.reason})
    ctx.log(f"The installer powered the VM off ({summary.reason})")

    ctx.progress(percent=82, phase="ejecting media")
    inactive = domain.get_xml(host.uri, vm.uuid, inactive=True)
    for device in _cdrom_targets(inactive):
        log_command(ctx, "virsh", "change-media", vm.name, device, "--eject", "--config")
    domain.define(host.uri, domain_xml.eject_cdroms(inactive, on_reboot="restart"))
    vm = sync_domain(host, vm.uuid) or vm

    ctx.progress(percent=88, phase="booting from disk")
    vm = start_once(ctx, vm)
    running = domain.get_xml(host.uri, vm.uuid, inactive=False)
    if domain_xml.cdrom_sources(running):
        raise HypervisorError(_("The installer media is still in the VM after ejecting it."))
    ctx.log("Booted from disk with the installer media ejected")
    return vm


def _cdrom_targets(xml_text: str) -> list[str]:
    return [disk.target for disk in domain_xml.parse_devices(xml_text).disks if disk.device == "cdrom" and disk.source]


def _cleanup_create(ctx) -> None:
    volume = ctx.state.get("volume")
    undo_what_was_made(ctx, ctx.job.host, [volume] if volume else [])


VM_CREATE = register(
    JobKind(
        name="vm.create",
        privilege="vm.create",
        target="host",
        validate=validate_create,
        run=_run_create,
        cleanup=_cleanup_create,
        reserve=reserve_new_vm,
        authorize=may_create_vm,
    )
)
