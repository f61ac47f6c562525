"""A domain's vCPUs and memory (seed §7.3 `virsh setvcpus`, §7.4 `virsh setmem` / `setmaxmem`,
`virsh dommemstat`).

The domain XML models both as "current up to a maximum": `<vcpu current='N'>MAX</vcpu>` and
`<currentMemory>` (the balloon) up to `<memory>`. The current values change live and/or in the
persistent definition; the maximums only in the persistent definition of a shut-off VM. Each function
reads the definitions it is about to change and refuses, with a clear code, what libvirt would refuse
with a less helpful message: "beyond-maximum", "only-shut-off", "cannot-unplug", "invalid-state".
"""

import xml.etree.ElementTree as ET
from dataclasses import dataclass

import libvirt
from django.utils.translation import gettext as _

from kvmpanel.virt.connection import call
from kvmpanel.virt.disks import _affect, _is_active
from kvmpanel.virt.domain import _kib, _lookup
from kvmpanel.virt.errors import HypervisorError

_INACTIVE = libvirt.VIR_DOMAIN_XML_INACTIVE
_CONFIG = libvirt.VIR_DOMAIN_AFFECT_CONFIG
# libvirt's codes when QEMU or the guest did not let a vCPU go (a timed-out ACPI eject, a machine
# type without vCPU hot-unplug).
_UNPLUG_FAILURES = {
    libvirt.VIR_ERR_OPERATION_FAILED,
    libvirt.VIR_ERR_OPERATION_TIMEOUT,
    libvirt.VIR_ERR_OPERATION_UNSUPPORTED,
    libvirt.VIR_ERR_CONFIG_UNSUPPORTED,
}


@dataclass(frozen=True)
class Sizing:
    """vCPUs and memory of one definition (the running VM's, or the persistent one)."""

    vcpus_current: int
    vcpus_max: int
    memory_current_kib: int
    memory_max_kib: int


@dataclass(frozen=True)
class Compute:
    active: bool
    live: Sizing | None  # None when the VM is not running
    config: Sizing | None  # None for a transient VM


@dataclass(frozen=True)
class MemoryStats:
    """`virsh dommemstat`: what the balloon driver reports (0 where the guest reports nothing)."""

    actual_kib: int  # the balloon's current size: what the guest was given
    rss_kib: int  # what the QEMU process holds on the host
    available_kib: int  # what the guest kernel sees as total memory
    unused_kib: int  # free in the guest
    usable_kib: int  # free plus reclaimable in the guest
    disk_caches_kib: int
    swap_in_kib: int
    swap_out_kib: int
    major_faults: int
    minor_faults: int
    last_update: int  # unix time of the guest's last report, 0 when it never reported


def parse_sizing(xml_text: str) -> Sizing:
    root = ET.fromstring(xml_text)  # noqa: S314 - libvirt's own XML
    vcpu = root.find("vcpu")
    vcpus_max = int(vcpu.text) if vcpu is not None and vcpu.text else 0
    vcpus_current = int(vcpu.get("current", vcpus_max)) if vcpu is not None else vcpus_max
    memory_max = _kib(root.find("memory"))
    current = root.find("currentMemory")
    return Sizing(
        vcpus_current=vcpus_current,
        vcpus_max=vcpus_max,
        memory_current_kib=memory_max if current is None else _kib(current),
        memory_max_kib=memory_max,
    )


def _read(dom: libvirt.virDomain) -> Compute:
    active = _is_active(dom)
    return Compute(
        active=active,
        live=parse_sizing(dom.XMLDesc(0)) if active else None,
        config=parse_sizing(dom.XMLDesc(_INACTIVE)) if dom.isPersistent() else None,
    )


def read_compute(uri: str, uuid: str) -> Compute:
    """The running and the persistent vCPUs and memory (`virsh vcpucount`, `virsh dominfo`)."""
    return call(uri, lambda conn: _read(_lookup(conn, uuid)))


def _chosen(state: Compute, live: bool, config: bool) -> list[Sizing]:
    """The definitions a `--live` / `--config` change goes to, refusing the ones the VM lacks."""
    chosen = []
    if live:
        if state.live is None:
            raise HypervisorError(_("The VM is not running, so nothing can change live."), code="invalid-state")
        chosen.append(state.live)
    if config:
        if state.config is None:
            raise HypervisorError(_("A transient VM has no persistent configuration."), code="invalid-state")
        chosen.append(state.config)
    return chosen


def _require_shut_off(state: Compute, what: str) -> Sizing:
    if state.active:
        raise HypervisorError(
            _("The maximum %(what)s can only change while the VM is shut off.") % {"what": what}, code="only-shut-off"
        )
    if state.config is None:
        raise HypervisorError(_("A transient VM has no persistent configuration."), code="invalid-state")
    return state.config


def set_vcpus(uri: str, uuid: str, count: int, *, live: bool, config: bool) -> None:
    """`virsh setvcpus NAME COUNT [--live] [--config]`: up to the maximum vCPUs. Adding vCPUs live
    plugs them into the running VM (the guest onlines them); removing them asks the guest to let
    them go, which it may refuse ("cannot-unplug")."""
    flags = _affect(live, config)

    def run(conn: libvirt.virConnect) -> None:
        dom = _lookup(conn, uuid)
        state = _read(dom)
        for sizing in _chosen(state, live, config):
            if count > sizing.vcpus_max:
                raise HypervisorError(
                    _("%(count)d vCPUs is beyond the VM's maximum of %(max)d.")
                    % {"count": count, "max": sizing.vcpus_max},
                    code="beyond-maximum",
                )
        try:
            dom.setVcpusFlags(count, flags)
        except libvirt.libvirtError as exc:
            unplugging = live and state.live is not None and count < state.live.vcpus_current
            if unplugging and exc.get_error_code() in _UNPLUG_FAILURES:
                raise HypervisorError(
                    _("The guest did not release its vCPUs (%(reason)s). Shut it down and change the configuration.")
                    % {"reason": exc.get_error_message()},
                    code="cannot-unplug",
                ) from exc
            raise

    call(uri, run)


def set_max_vcpus(uri: str, uuid: str, count: int) -> None:
    """`virsh setvcpus NAME COUNT --maximum --config`, shut-off VMs only. Lowering the maximum under
    the current count lowers the count with it (what libvirt does)."""

    def run(conn: libvirt.virConnect) -> None:
        dom = _lookup(conn, uuid)
        sizing = _require_shut_off(_read(dom), _("vCPUs"))
        dom.setVcpusFlags(count, _CONFIG | libvirt.VIR_DOMAIN_VCPU_MAXIMUM)
        if count < sizing.vcpus_current and parse_sizing(dom.XMLDesc(_INACTIVE)).vcpus_current > count:
            dom.setVcpusFlags(count, _CONFIG)  # drivers that keep current above the new maximum

    call(uri, run)


def set_memory(uri: str, uuid: str, kib: int, *, live: bool, config: bool) -> None:
    """`virsh setmem NAME SIZE [--live] [--config]`: the balloon, up to the maximum memory."""
    flags = _affect(live, config)

    def run(conn: libvirt.virConnect) -> None:
        dom = _lookup(conn, uuid)
        for sizing in _chosen(_read(dom), live, config):
            if kib > sizing.memory_max_kib:
                raise HypervisorError(
                    _("%(size)d MiB is beyond the VM's maximum memory of %(max)d MiB.")
                    % {"size": kib // 1024, "max": sizing.memory_max_kib // 1024},
                    code="beyond-maximum",
                )
        try:
            dom.setMemoryFlags(kib, flags)
        except libvirt.libvirtError as exc:
            # Drivers that take one definition per call (test:///): the running VM first, as QEMU does.
            if not (live and config) or exc.get_error_code() != libvirt.VIR_ERR_INVALID_ARG:
                raise
            dom.setMemoryFlags(kib, libvirt.VIR_DOMAIN_AFFECT_LIVE)
            dom.setMemoryFlags(kib, _CONFIG)

    call(uri, run)


def set_max_memory(uri: str, uuid: str, kib: int) -> None:
    """`virsh setmaxmem NAME SIZE --config`, shut-off VMs only. Lowering it under the current memory
    lowers the current memory with it."""

    def run(conn: libvirt.virConnect) -> None:
        dom = _lookup(conn, uuid)
        _require_shut_off(_read(dom), _("memory"))
        dom.setMemoryFlags(kib, _CONFIG | libvirt.VIR_DOMAIN_MEM_MAXIMUM)
        if parse_sizing(dom.XMLDesc(_INACTIVE)).memory_current_kib > kib:
            dom.setMemoryFlags(kib, _CONFIG)  # drivers that keep current above the new maximum

    call(uri, run)


def memory_stats(uri: str, uuid: str) -> MemoryStats | None:
    """`virsh dommemstat NAME`; None when the VM is not running."""

    def run(conn: libvirt.virConnect) -> MemoryStats | None:
        dom = _lookup(conn, uuid)
        if not _is_active(dom):
            return None
        stats = dom.memoryStats() or {}
        return MemoryStats(
            actual_kib=int(stats.get("actual", 0)),
            rss_kib=int(stats.get("rss", 0)),
            available_kib=int(stats.get("available", 0)),
            unused_kib=int(stats.get("unused", 0)),
            usable_kib=int(stats.get("usable", 0)),
            disk_caches_kib=int(stats.get("disk_caches", 0)),
            swap_in_kib=int(stats.get("swap_in", 0)),
            swap_out_kib=int(stats.get("swap_out", 0)),
            major_faults=int(stats.get("major_fault", 0)),
            minor_faults=int(stats.get("minor_fault", 0)),
            last_update=int(stats.get("last_update", 0)),
        )

    return call(uri, run)
