"""A VM's vCPUs and memory (issue 6, "Compute"): change them live and/or persistently up to their
maximums (seed §7.3 `virsh setvcpus`, §7.4 `virsh setmem`), change the maximums while shut off
(`setvcpus --maximum --config`, `setmaxmem --config`), read the balloon's statistics (`dommemstat`).

Every change authorizes with `vm.config.cpu` or `vm.config.memory`, re-reads the domain from its host,
refuses bad input before the hypervisor sees it (whole numbers, within the maximum, within the host),
checks the owner's and the project's quotas before a maximum grows (quotas count maximums: see
apps.accounts.quotas.vm_usage), writes one audit event with the equivalent virsh command, and
re-syncs the VM's inventory row so its page and the quota usage see the change.
"""

import contextlib
from dataclasses import dataclass

from django.utils.translation import gettext as _

from apps.accounts.quotas import Usage, refuse_growth_over_quota
from apps.core.errors import ServiceError, from_hypervisor
from apps.hosts.inventory import sync_domain
from apps.vms.disks import _audited, _flags, _prepare, _quote
from apps.vms.models import VirtualMachine
from apps.vms.services import STOPPED, _fresh, require
from kvmpanel.virt import compute
from kvmpanel.virt.compute import Compute, MemoryStats, Sizing
from kvmpanel.virt.errors import HypervisorError

CPU_PRIVILEGE = "vm.config.cpu"
MEMORY_PRIVILEGE = "vm.config.memory"
# Below this no current Linux guest boots, and a balloon squeezed under it starves the running one.
MIN_MEMORY_MIB = 64
# Far beyond any real host: a number past it is a typo, refused before anything else is asked.
MAX_MEMORY_MIB = 16 << 20  # 16 TiB
MAX_VCPUS = 4096


@dataclass(frozen=True)
class ComputeChange:
    vm: VirtualMachine
    command: str  # the virsh equivalent, shown to the user
    target: str = ""  # what changed: "vcpus", "max-vcpus", "memory", "max-memory" (the audit's detail)


def _whole(value: object, *, label: str, low: int, high: int, code: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ServiceError(_("%(what)s must be a whole number.") % {"what": label}, status=400, code=code)
    if not low <= value <= high:
        raise ServiceError(
            _("%(what)s must be between %(low)d and %(high)d; %(value)d is not.")
            % {"what": label, "low": low, "high": high, "value": value},
            status=400,
            code=code,
        )
    return value


def _sizings(vm: VirtualMachine, live: bool, config: bool) -> list[Sizing]:
    state = compute.read_compute(vm.host.uri, vm.uuid)
    return [sizing for sizing, wanted in ((state.live, live), (state.config, config)) if wanted and sizing]


def _shut_off(vm: VirtualMachine, what: str) -> VirtualMachine:
    fresh = _fresh(vm)
    if fresh.state not in STOPPED:
        raise ServiceError(
            _("The maximum %(what)s can only change while the VM is shut off; shut it down first.") % {"what": what},
            status=409,
            code="only-shut-off",
        )
    if not fresh.persistent:
        raise ServiceError(_("A transient VM has no persistent configuration."), status=409, code="invalid-state")
    return fresh


def set_vcpus(
    vm: VirtualMachine,
    count: int,
    *,
    actor,
    live: bool | None = None,
    config: bool | None = None,
    client_address: str | None = None,
) -> ComputeChange:
    """`virsh setvcpus NAME COUNT [--live] [--config]`, up to the maximum vCPUs. Unset `live` /
    `config` mean every definition the VM has (the running one while it runs, the persistent one)."""
    require(actor, vm, CPU_PRIVILEGE)

    def work() -> ComputeChange:
        wanted = _whole(count, label=_("The vCPU count"), low=1, high=MAX_VCPUS, code="invalid-vcpus")
        fresh, on_live, on_config = _prepare(vm, live, config)
        for sizing in _sizings(fresh, on_live, on_config):
            if wanted > sizing.vcpus_max:
                raise ServiceError(
                    _(
                        "%(count)d vCPUs is beyond the maximum of %(max)d; raise the maximum vCPUs while the VM is "
                        "shut off."
                    )
                    % {"count": wanted, "max": sizing.vcpus_max},
                    status=400,
                    code="beyond-maximum",
                )
        try:
            compute.set_vcpus(fresh.host.uri, fresh.uuid, wanted, live=on_live, config=on_config)
        except HypervisorError as error:
            if error.code == "cannot-unplug":  # some vCPUs may have left: the row shows what is true now
                with contextlib.suppress(HypervisorError):
                    sync_domain(fresh.host, fresh.uuid)
            raise
        command = _quote("virsh", "setvcpus", fresh.name, wanted) + " " + _flags(on_live, on_config)
        return ComputeChange(sync_domain(fresh.host, fresh.uuid) or fresh, command, "vcpus")

    return _audited(actor, vm, "vm.vcpus", work, client_address=client_address)


def set_max_vcpus(vm: VirtualMachine, count: int, *, actor, client_address: str | None = None) -> ComputeChange:
    """`virsh setvcpus NAME COUNT --maximum --config` on a shut-off VM: at most the host's CPUs, and
    a raise must fit the owner's and the project's vCPU quotas."""
    require(actor, vm, CPU_PRIVILEGE)

    def work() -> ComputeChange:
        wanted = _whole(count, label=_("The maximum vCPUs"), low=1, high=MAX_VCPUS, code="invalid-vcpus")
        fresh = _shut_off(vm, _("vCPUs"))
        host_cpus = fresh.host.cpu_count  # the probe's inventory (0: never probed, no ceiling known)
        if host_cpus and wanted > host_cpus:
            raise ServiceError(
                _("Host %(host)s has %(cpus)d CPUs; a VM may have at most that many vCPUs, not %(count)d.")
                % {"host": fresh.host.name, "cpus": host_cpus, "count": wanted},
                status=400,
                code="beyond-host",
            )
        if wanted > fresh.vcpus_max:
            refuse_growth_over_quota(fresh, Usage(vcpus=wanted - fresh.vcpus_max))
        compute.set_max_vcpus(fresh.host.uri, fresh.uuid, wanted)
        command = _quote("virsh", "setvcpus", fresh.name, wanted) + " --maximum --config"
        return ComputeChange(sync_domain(fresh.host, fresh.uuid) or fresh, command, "max-vcpus")

    return _audited(actor, vm, "vm.vcpus.maximum", work, client_address=client_address)


def set_memory(
    vm: VirtualMachine,
    mib: int,
    *,
    actor,
    live: bool | None = None,
    config: bool | None = None,
    client_address: str | None = None,
) -> ComputeChange:
    """`virsh setmem NAME SIZE [--live] [--config]`: the balloon, up to the maximum memory. The
    guest gives memory back or takes it up again while it runs."""
    require(actor, vm, MEMORY_PRIVILEGE)

    def work() -> ComputeChange:
        wanted = _whole(mib, label=_("The memory (MiB)"), low=MIN_MEMORY_MIB, high=MAX_MEMORY_MIB, code="invalid-size")
        fresh, on_live, on_config = _prepare(vm, live, config)
        for sizing in _sizings(fresh, on_live, on_config):
            if wanted * 1024 > sizing.memory_max_kib:
                raise ServiceError(
                    _(
                        "%(size)d MiB is beyond the maximum memory of %(max)d MiB; raise the maximum while the VM "
                        "is shut off."
                    )
                    % {"size": wanted, "max": sizing.memory_max_kib // 1024},
                    status=400,
                    code="beyond-maximum",
                )
        compute.set_memory(fresh.host.uri, fresh.uuid, wanted * 1024, live=on_live, config=on_config)
        command = _quote("virsh", "setmem", fresh.name, f"{wanted}M") + " " + _flags(on_live, on_config)
        return ComputeChange(sync_domain(fresh.host, fresh.uuid) or fresh, command, "memory")

    return _audited(actor, vm, "vm.memory", work, client_address=client_address)


def set_max_memory(vm: VirtualMachine, mib: int, *, actor, client_address: str | None = None) -> ComputeChange:
    """`virsh setmaxmem NAME SIZE --config` on a shut-off VM: at most the host's memory, and a raise
    must fit the owner's and the project's memory quotas."""
    require(actor, vm, MEMORY_PRIVILEGE)

    def work() -> ComputeChange:
        wanted = _whole(
            mib, label=_("The maximum memory (MiB)"), low=MIN_MEMORY_MIB, high=MAX_MEMORY_MIB, code="invalid-size"
        )
        fresh = _shut_off(vm, _("memory"))
        host_mib = fresh.host.memory_mib  # the probe's inventory (0: never probed, no ceiling known)
        if host_mib and wanted > host_mib:
            raise ServiceError(
                _("Host %(host)s has %(host_mib)d MiB of memory; a VM may have at most that much, not %(size)d MiB.")
                % {"host": fresh.host.name, "host_mib": host_mib, "size": wanted},
                status=400,
                code="beyond-host",
            )
        current_max_mib = fresh.memory_max_kib // 1024
        if wanted > current_max_mib:
            refuse_growth_over_quota(fresh, Usage(memory_mib=wanted - current_max_mib))
        compute.set_max_memory(fresh.host.uri, fresh.uuid, wanted * 1024)
        command = _quote("virsh", "setmaxmem", fresh.name, f"{wanted}M") + " --config"
        return ComputeChange(sync_domain(fresh.host, fresh.uuid) or fresh, command, "max-memory")

    return _audited(actor, vm, "vm.memory.maximum", work, client_address=client_address)


def describe_compute(vm: VirtualMachine, *, actor) -> Compute:
    """The running and persistent vCPUs and memory, as the host has them now."""
    require(actor, vm, "vm.view")
    try:
        return compute.read_compute(vm.host.uri, vm.uuid)
    except HypervisorError as error:
        raise from_hypervisor(error, host_name=vm.host.name) from error


def read_memory_stats(vm: VirtualMachine, *, actor) -> MemoryStats | None:
    """`virsh dommemstat NAME`; None when the VM is not running."""
    require(actor, vm, "vm.view")
    try:
        return compute.memory_stats(vm.host.uri, vm.uuid)
    except HypervisorError as error:
        raise from_hypervisor(error, host_name=vm.host.name) from error
