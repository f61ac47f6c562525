"""Plain values the virt layer hands to the rest of the panel (never a virDomain or virConnect)."""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class DiskSummary:
    target: str  # guest device name, e.g. "vda"
    device: str  # "disk", "cdrom", "floppy", "lun"
    source: str  # file path, volume "pool/vol", or "" for an empty drive
    format: str  # "qcow2", "raw", ... or "" when unknown
    bus: str
    readonly: bool = False


@dataclass(frozen=True)
class NicSummary:
    mac: str
    type: str  # "network", "bridge", "user", ...
    source: str  # network or bridge name
    model: str
    target: str = ""  # host-side device (vnet0) while running


@dataclass(frozen=True)
class ConsoleEndpoint:
    """Where the VM's graphical console listens, as the host sees it."""

    kind: str  # "vnc" or "spice"
    socket: str = ""  # unix socket path on the host, when it listens on a socket
    address: str = ""  # listen address, when it listens on TCP
    port: int = 0

    def describe(self) -> str:
        if self.socket:
            return f"{self.kind} unix:{self.socket}"
        if self.port > 0:
            return f"{self.kind} {self.address or '127.0.0.1'}:{self.port}"
        return f"{self.kind} (not listening)"


@dataclass(frozen=True)
class InterfaceAddress:
    interface: str
    mac: str
    address: str  # "192.168.250.105/24"
    source: str  # "lease" or "agent"


@dataclass(frozen=True)
class DomainSummary:
    uuid: str
    name: str
    state: str  # one of apps.vms.choices.PowerState values
    reason: str
    vcpus_current: int
    vcpus_max: int
    memory_current_kib: int
    memory_max_kib: int
    autostart: bool
    persistent: bool
    disks: tuple[DiskSummary, ...] = ()
    nics: tuple[NicSummary, ...] = ()
    console: ConsoleEndpoint | None = None
    agent_connected: bool = False
    addresses: tuple[InterfaceAddress, ...] = ()


@dataclass(frozen=True)
class StoragePoolSummary:
    name: str
    type: str
    path: str
    active: bool
    capacity_bytes: int = 0
    available_bytes: int = 0


@dataclass(frozen=True)
class NetworkSummary:
    name: str
    active: bool
    forward_mode: str  # "" means isolated (no <forward>)
    bridge: str


@dataclass(frozen=True)
class HostCapabilities:
    hostname: str
    cpu_model: str
    cpu_count: int
    memory_mib: int
    virtualization_flags: tuple[str, ...]  # "vmx" / "svm" seen in the host CPU features
    kvm_usable: bool  # False means guests run under TCG (software emulation) only
    libvirt_version: str
    hypervisor: str  # driver type, e.g. "QEMU", "TEST"
    hypervisor_version: str
    pools: tuple[StoragePoolSummary, ...] = field(default_factory=tuple)
    networks: tuple[NetworkSummary, ...] = field(default_factory=tuple)
