"""Host capabilities (seed §3.1: `grep -E '(vmx|svm)' /proc/cpuinfo`, `virsh version`, `virsh nodeinfo`)."""

import xml.etree.ElementTree as ET

import libvirt

from kvmpanel.virt.connection import call
from kvmpanel.virt.types import HostCapabilities, NetworkSummary, StoragePoolSummary


def _version(number: int) -> str:
    major, rest = divmod(number, 1_000_000)
    minor, release = divmod(rest, 1_000)
    return f"{major}.{minor}.{release}"


def _kvm_usable(capabilities: ET.Element) -> bool:
    """True when the host offers `<domain type='kvm'>` (hardware virtualization), not only TCG."""
    return any(domain.get("type") == "kvm" for domain in capabilities.iterfind("./guest/arch/domain"))


def _pools(conn: libvirt.virConnect) -> tuple[StoragePoolSummary, ...]:
    pools = []
    for pool in conn.listAllStoragePools(0):
        root = ET.fromstring(pool.XMLDesc(0))  # noqa: S314
        active = bool(pool.isActive())
        capacity = available = 0
        if active:
            _state, capacity, _allocation, available = pool.info()
        pools.append(
            StoragePoolSummary(
                name=pool.name(),
                type=root.get("type", ""),
                path=root.findtext("./target/path", ""),
                active=active,
                capacity_bytes=capacity,
                available_bytes=available,
            )
        )
    return tuple(sorted(pools, key=lambda p: p.name))


def _networks(conn: libvirt.virConnect) -> tuple[NetworkSummary, ...]:
    networks = []
    for network in conn.listAllNetworks(0):
        root = ET.fromstring(network.XMLDesc(0))  # noqa: S314
        forward = root.find("forward")
        bridge = root.find("bridge")
        networks.append(
            NetworkSummary(
                name=network.name(),
                active=bool(network.isActive()),
                forward_mode=forward.get("mode", "nat") if forward is not None else "",
                bridge=bridge.get("name", "") if bridge is not None else "",
            )
        )
    return tuple(sorted(networks, key=lambda n: n.name))


def probe(uri: str) -> HostCapabilities:
    def run(conn: libvirt.virConnect) -> HostCapabilities:
        capabilities = ET.fromstring(conn.getCapabilities())  # noqa: S314
        cpu = capabilities.find("./host/cpu")
        features = {f.get("name") for f in cpu.iterfind("feature")} if cpu is not None else set()
        info = conn.getInfo()
        try:
            hypervisor_version = _version(conn.getVersion())
        except libvirt.libvirtError:
            hypervisor_version = ""
        return HostCapabilities(
            hostname=conn.getHostname(),
            cpu_model=(cpu.findtext("model", "") if cpu is not None else "") or info[0],
            cpu_count=int(info[2]),
            memory_mib=int(info[1]),
            virtualization_flags=tuple(sorted(features & {"vmx", "svm"})),
            kvm_usable=_kvm_usable(capabilities),
            libvirt_version=_version(conn.getLibVersion()),
            hypervisor=conn.getType(),
            hypervisor_version=hypervisor_version,
            pools=_pools(conn),
            networks=_networks(conn),
        )

    return call(uri, run)


def list_pools(uri: str) -> tuple[StoragePoolSummary, ...]:
    return call(uri, _pools)
