"""The curated OS variants of the create wizard (virt-install's `--os-variant`, seed §3.3).

Each variant gives the hardware the guest's installer has drivers for (machine type, disk bus, NIC
model, clock) and sizes to start from. The list is short on purpose: a few variants that are known to
install, and "other" for the rest. `osinfo` is the libosinfo short id shown in the equivalent
virt-install command.
"""

from dataclasses import dataclass

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

GIB = 1 << 30


@dataclass(frozen=True)
class OSVariant:
    key: str
    label: str | Promise
    osinfo: str
    machine: str  # kvmpanel.virt.xml.MACHINE_TYPES
    disk_bus: str  # kvmpanel.virt.xml.DISK_BUSES
    nic_model: str  # kvmpanel.virt.xml.NIC_MODELS
    clock_offset: str = "utc"  # Windows keeps its clock in local time
    vcpus: int = 2
    max_vcpus: int = 4
    memory_mib: int = 2048
    max_memory_mib: int = 4096
    disk_gib: int = 20
    note: str | Promise = ""


OS_VARIANTS: dict[str, OSVariant] = {
    variant.key: variant
    for variant in [
        OSVariant(
            "linux",
            _("Generic Linux (2022 or newer)"),
            "linux2022",
            machine="q35",
            disk_bus="virtio",
            nic_model="virtio",
            note=_("Any current distribution: virtio disk and network, PCIe machine."),
        ),
        OSVariant("debian12", _("Debian 12"), "debian12", machine="q35", disk_bus="virtio", nic_model="virtio"),
        OSVariant(
            "ubuntu24.04",
            _("Ubuntu 24.04 LTS"),
            "ubuntu24.04",
            machine="q35",
            disk_bus="virtio",
            nic_model="virtio",
            memory_mib=4096,
            max_memory_mib=8192,
            disk_gib=25,
        ),
        OSVariant(
            "rhel9",
            _("RHEL 9 / Rocky Linux 9 / AlmaLinux 9"),
            "rhel9.0",
            machine="q35",
            disk_bus="virtio",
            nic_model="virtio",
        ),
        OSVariant(
            "win2k22",
            _("Windows Server 2022"),
            "win2k22",
            machine="q35",
            # Windows' installer has no virtio drivers: SATA and e1000e work out of the box.
            disk_bus="sata",
            nic_model="e1000e",
            clock_offset="localtime",
            memory_mib=4096,
            max_memory_mib=8192,
            disk_gib=64,
            note=_("SATA disk and e1000e network, which the installer knows without a driver disk."),
        ),
        OSVariant(
            "other",
            _("Other or old OS (i440fx, IDE, e1000)"),
            "generic",
            machine="pc",
            disk_bus="ide",
            nic_model="e1000",
            vcpus=1,
            max_vcpus=2,
            memory_mib=1024,
            max_memory_mib=1024,
            disk_gib=10,
            note=_("Emulated PC hardware every x86 OS has drivers for; slower than virtio."),
        ),
    ]
}

DEFAULT_VARIANT = "linux"


def variant_choices() -> list[tuple[str, str | Promise]]:
    return [(variant.key, variant.label) for variant in OS_VARIANTS.values()]
