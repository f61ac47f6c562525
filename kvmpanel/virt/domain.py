"""Domains: read their state for the inventory and run lifecycle operations (virsh §3.4, §5.1)."""

import contextlib
import xml.etree.ElementTree as ET

import libvirt
from django.utils.translation import gettext as _

from kvmpanel.virt import xml as domain_xml
from kvmpanel.virt.connection import call
from kvmpanel.virt.errors import HypervisorError
from kvmpanel.virt.types import DomainSummary, InterfaceAddress

STATE_NAMES = {
    libvirt.VIR_DOMAIN_NOSTATE: "nostate",
    libvirt.VIR_DOMAIN_RUNNING: "running",
    libvirt.VIR_DOMAIN_BLOCKED: "blocked",
    libvirt.VIR_DOMAIN_PAUSED: "paused",
    libvirt.VIR_DOMAIN_SHUTDOWN: "shutdown",
    libvirt.VIR_DOMAIN_SHUTOFF: "shutoff",
    libvirt.VIR_DOMAIN_CRASHED: "crashed",
    libvirt.VIR_DOMAIN_PMSUSPENDED: "pmsuspended",
}

# The reason codes virsh prints after the state ("shut off (destroyed)"), per state.
_REASONS = {
    "running": [
        "unknown",
        "booted",
        "migrated",
        "restored",
        "from snapshot",
        "unpaused",
        "migration canceled",
        "save canceled",
        "wakeup",
        "crashed",
        "post-copy",
    ],
    "paused": [
        "unknown",
        "user",
        "migrating",
        "saving",
        "dumping",
        "I/O error",
        "watchdog",
        "from snapshot",
        "shutting down",
        "snapshot",
        "crashed",
        "starting up",
        "post-copy",
        "post-copy failed",
    ],
    "shutoff": [
        "unknown",
        "shutdown",
        "destroyed",
        "crashed",
        "migrated",
        "saved",
        "failed",
        "from snapshot",
        "daemon",
    ],
    "shutdown": ["unknown", "user"],
    "crashed": ["unknown", "panicked"],
    "pmsuspended": ["unknown"],
    "blocked": ["unknown"],
    "nostate": ["unknown"],
}

_STATS = libvirt.VIR_DOMAIN_STATS_STATE


def _reason(state: str, code: int) -> str:
    names = _REASONS.get(state, [])
    return names[code] if 0 <= code < len(names) else "unknown"


def _summarize(dom: libvirt.virDomain, state_code: int, reason_code: int, with_addresses: bool) -> DomainSummary:
    xml_text = dom.XMLDesc(0)
    root = ET.fromstring(xml_text)  # noqa: S314 - libvirt's own XML
    devices = domain_xml.parse_devices(xml_text)
    state = STATE_NAMES.get(state_code, "nostate")
    vcpu = root.find("vcpu")
    vcpus_max = int(vcpu.text) if vcpu is not None and vcpu.text else 0
    vcpus_current = int(vcpu.get("current", vcpus_max)) if vcpu is not None else vcpus_max
    addresses: tuple[InterfaceAddress, ...] = ()
    if with_addresses and state == "running" and devices.nics:
        addresses = _addresses(dom, agent=devices.agent_connected)
    return DomainSummary(
        uuid=dom.UUIDString(),
        name=dom.name(),
        state=state,
        reason=_reason(state, reason_code),
        vcpus_current=vcpus_current,
        vcpus_max=vcpus_max,
        memory_current_kib=_kib(root.find("currentMemory")),
        memory_max_kib=_kib(root.find("memory")),
        autostart=bool(dom.autostart()) if dom.isPersistent() else False,
        persistent=bool(dom.isPersistent()),
        disks=devices.disks,
        nics=devices.nics,
        console=devices.console,
        agent_connected=devices.agent_connected,
        addresses=addresses,
    )


_UNIT_KIB = {
    "b": 1 / 1024,
    "bytes": 1 / 1024,
    "k": 1,
    "kib": 1,
    "kb": 1000 / 1024,
    "m": 1024,
    "mib": 1024,
    "mb": 1e6 / 1024,
    "g": 1024**2,
    "gib": 1024**2,
    "gb": 1e9 / 1024,
}


def _kib(element: ET.Element | None) -> int:
    if element is None or not element.text:
        return 0
    return int(int(element.text) * _UNIT_KIB.get(element.get("unit", "KiB").lower(), 1))


def _addresses(dom: libvirt.virDomain, *, agent: bool) -> tuple[InterfaceAddress, ...]:
    sources = [("lease", libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE)]
    if agent:
        sources.append(("agent", libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT))
    found: list[InterfaceAddress] = []
    for label, source in sources:
        try:
            interfaces = dom.interfaceAddresses(source, 0) or {}
        except libvirt.libvirtError:
            continue  # no lease yet, or the agent is not answering: addresses are best effort
        for interface, info in interfaces.items():
            if interface == "lo":
                continue
            for addr in info.get("addrs") or []:
                found.append(
                    InterfaceAddress(
                        interface=interface,
                        mac=info.get("hwaddr") or "",
                        address=f"{addr['addr']}/{addr['prefix']}",
                        source=label,
                    )
                )
    return tuple(found)


def list_domains(uri: str, *, with_addresses: bool = True) -> list[DomainSummary]:
    """Every domain on the host, with one batched state query (`getAllDomainStats`)."""

    def run(conn: libvirt.virConnect) -> list[DomainSummary]:
        try:
            records = conn.getAllDomainStats(_STATS, 0)
            states = {dom.UUIDString(): (dom, stats["state.state"], stats["state.reason"]) for dom, stats in records}
        except libvirt.libvirtError:
            states = {}
            for dom in conn.listAllDomains(0):
                state, reason = dom.state()
                states[dom.UUIDString()] = (dom, state, reason)
        summaries = []
        for dom, state, reason in states.values():
            try:
                summaries.append(_summarize(dom, state, reason, with_addresses))
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                    raise  # a domain undefined while we listed: skip it, the next pass agrees
        return summaries

    return call(uri, run)


def _lookup(conn: libvirt.virConnect, uuid: str) -> libvirt.virDomain:
    try:
        return conn.lookupByUUIDString(uuid)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            raise HypervisorError(_("The VM no longer exists on its host."), code="no-domain") from exc
        raise


def get_domain(uri: str, uuid: str, *, with_addresses: bool = True) -> DomainSummary:
    def run(conn: libvirt.virConnect) -> DomainSummary:
        dom = _lookup(conn, uuid)
        state, reason = dom.state()
        return _summarize(dom, state, reason, with_addresses)

    return call(uri, run)


def domain_exists(uri: str, *, name: str = "", uuid: str = "") -> bool:
    """Whether a domain with this UUID or this name is defined on the host."""

    def found(lookup, key: str) -> bool:
        if not key:
            return False
        try:
            lookup(key)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                raise
            return False
        return True

    return call(uri, lambda conn: found(conn.lookupByUUIDString, uuid) or found(conn.lookupByName, name))


def _on_domain(uri: str, uuid: str, action) -> None:
    call(uri, lambda conn: action(_lookup(conn, uuid)))


def start(uri: str, uuid: str) -> None:
    _on_domain(uri, uuid, lambda dom: dom.create())


def shutdown(uri: str, uuid: str) -> None:
    """Ask the guest to power off: the guest agent when it answers, else the ACPI power button."""
    _on_domain(uri, uuid, lambda dom: dom.shutdownFlags(0))


def force_off(uri: str, uuid: str) -> None:
    _on_domain(uri, uuid, lambda dom: dom.destroy())


def reboot(uri: str, uuid: str) -> None:
    _on_domain(uri, uuid, lambda dom: dom.reboot(0))


def suspend(uri: str, uuid: str) -> None:
    _on_domain(uri, uuid, lambda dom: dom.suspend())


def resume(uri: str, uuid: str) -> None:
    _on_domain(uri, uuid, lambda dom: dom.resume())


def set_autostart(uri: str, uuid: str, enabled: bool) -> None:
    _on_domain(uri, uuid, lambda dom: dom.setAutostart(1 if enabled else 0))


def rename(uri: str, uuid: str, new_name: str) -> None:
    domain_xml.validate_name(new_name)
    _on_domain(uri, uuid, lambda dom: dom.rename(new_name, 0))


def undefine(uri: str, uuid: str, *, remove_storage: bool) -> list[str]:
    """Undefine the domain (with its snapshot metadata), then optionally delete its disk volumes.

    The domain goes first so a failure leaves the disks untouched. Only disks that are volumes of a
    storage pool are deleted; CD-ROM media are never deleted. Returns the paths that were removed.
    """

    def run(conn: libvirt.virConnect) -> list[str]:
        dom = _lookup(conn, uuid)
        devices = domain_xml.parse_devices(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        flags = (
            libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
            | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
            | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
        )
        try:
            dom.undefineFlags(flags)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() not in {libvirt.VIR_ERR_INVALID_ARG, libvirt.VIR_ERR_NO_SUPPORT}:
                raise
            dom.undefine()
        removed = []
        if remove_storage:
            for disk in devices.disks:
                if disk.device != "disk" or not disk.source.startswith("/"):
                    continue
                with contextlib.suppress(libvirt.libvirtError):
                    conn.storageVolLookupByPath(disk.source).delete(0)
                    removed.append(disk.source)
        return removed

    return call(uri, run)


def get_xml(uri: str, uuid: str, *, inactive: bool = True) -> str:
    """The domain XML as `virsh dumpxml [--inactive]` shows it (never with --security-info)."""
    flags = libvirt.VIR_DOMAIN_XML_INACTIVE if inactive else 0
    return call(uri, lambda conn: _lookup(conn, uuid).XMLDesc(flags))


def define(uri: str, xml_text: str) -> DomainSummary:
    """`virsh define --validate`: libvirt checks the XML against its schema before defining."""

    def run(conn: libvirt.virConnect) -> DomainSummary:
        try:
            dom = conn.defineXMLFlags(xml_text, libvirt.VIR_DOMAIN_DEFINE_VALIDATE)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() != libvirt.VIR_ERR_INVALID_ARG:
                raise
            dom = conn.defineXML(xml_text)  # drivers without schema validation (test:///)
        state, reason = dom.state()
        return _summarize(dom, state, reason, with_addresses=False)

    return call(uri, run)
