"""Domain XML: parse what the inventory shows, build what the panel defines, vet what users upload.

XML is built and edited with ElementTree only, never by string formatting, and names and paths are
validated before they reach libvirt.
"""

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from django.utils.translation import gettext as _

from kvmpanel.virt.errors import HypervisorError
from kvmpanel.virt.types import ConsoleEndpoint, DiskSummary, NicSummary

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
MAX_UPLOAD_BYTES = 256 * 1024
_ALLOWED_DISK_TYPES = {"file", "volume"}
_FORBIDDEN_DEVICES = {"hostdev", "redirdev", "smartcard", "shmem", "filesystem"}


def validate_name(name: str) -> str:
    if not NAME_PATTERN.match(name or ""):
        raise HypervisorError(
            _("A VM name is 1-63 characters: letters, digits, '.', '_' or '-', starting with a letter or digit."),
            code="invalid-name",
        )
    return name


def _parse(xml_text: str) -> ET.Element:
    if "<!DOCTYPE" in xml_text or "<!ENTITY" in xml_text:
        raise HypervisorError(_("XML with a DOCTYPE or entities is not accepted."), code="invalid-xml")
    try:
        return ET.fromstring(xml_text)  # noqa: S314 - DOCTYPE/ENTITY refused above
    except ET.ParseError as exc:
        raise HypervisorError(_("The XML is not well-formed: %(error)s.") % {"error": exc}, code="invalid-xml") from exc


@dataclass(frozen=True)
class DomainDevices:
    disks: tuple[DiskSummary, ...]
    nics: tuple[NicSummary, ...]
    console: ConsoleEndpoint | None
    agent_connected: bool


def parse_devices(xml_text: str) -> DomainDevices:
    root = _parse(xml_text)
    disks = []
    for disk in root.iterfind("./devices/disk"):
        source = disk.find("source")
        source_text = ""
        if source is not None:
            source_text = (
                source.get("file")
                or source.get("dev")
                or (f"{source.get('pool')}/{source.get('volume')}" if source.get("volume") else "")
                or source.get("name", "")
            )
        driver = disk.find("driver")
        target = disk.find("target")
        disks.append(
            DiskSummary(
                target=target.get("dev", "") if target is not None else "",
                device=disk.get("device", "disk"),
                source=source_text,
                format=driver.get("type", "") if driver is not None else "",
                bus=target.get("bus", "") if target is not None else "",
                readonly=disk.find("readonly") is not None,
            )
        )
    nics = []
    for nic in root.iterfind("./devices/interface"):
        mac = nic.find("mac")
        source = nic.find("source")
        model = nic.find("model")
        target = nic.find("target")
        nics.append(
            NicSummary(
                mac=mac.get("address", "") if mac is not None else "",
                type=nic.get("type", ""),
                source=(source.get("network") or source.get("bridge") or source.get("dev") or "")
                if source is not None
                else "",
                model=model.get("type", "") if model is not None else "",
                target=target.get("dev", "") if target is not None else "",
            )
        )
    return DomainDevices(
        disks=tuple(disks),
        nics=tuple(nics),
        console=_console(root),
        agent_connected=_agent_connected(root),
    )


def _console(root: ET.Element) -> ConsoleEndpoint | None:
    for graphics in root.iterfind("./devices/graphics"):
        kind = graphics.get("type", "")
        if kind not in {"vnc", "spice"}:
            continue
        socket = graphics.get("socket", "")
        listen = graphics.find("listen")
        if not socket and listen is not None and listen.get("type") == "socket":
            socket = listen.get("socket", "")
        address = graphics.get("listen", "")
        if listen is not None and listen.get("type") == "address":
            address = listen.get("address", address)
        return ConsoleEndpoint(kind=kind, socket=socket, address=address, port=int(graphics.get("port", "0")))
    return None


def _agent_connected(root: ET.Element) -> bool:
    for channel in root.iterfind("./devices/channel"):
        target = channel.find("target")
        if target is not None and target.get("name") == "org.qemu.guest_agent.0":
            return target.get("state") == "connected"
    return False


@dataclass(frozen=True)
class UploadedDomain:
    """An uploaded domain definition that passed the panel's own checks (libvirt validates the rest)."""

    name: str
    uuid: str
    file_paths: tuple[str, ...]  # every file-backed disk's source, to be checked against the pools


def vet_uploaded_domain(xml_text: str) -> UploadedDomain:
    """Refuse what must never come from a user's XML, before libvirt sees it.

    libvirt's own schema validation (VIR_DOMAIN_DEFINE_VALIDATE) catches unknown elements; this
    catches what the schema allows but the panel must not: QEMU pass-through arguments, host device
    assignment, interface scripts, block or network disks, and disk files outside the storage pools
    (the caller checks `file_paths` against the host's pools).
    """
    if len(xml_text.encode()) > MAX_UPLOAD_BYTES:
        raise HypervisorError(_("The XML is larger than 256 KiB."), code="invalid-xml")
    root = _parse(xml_text)
    if root.tag != "domain":
        raise HypervisorError(
            _("The root element must be <domain>, not <%(tag)s>.") % {"tag": root.tag}, code="invalid-xml"
        )
    for element in root.iter():
        if element.tag.startswith("{") and not _inside_metadata(root, element):
            raise HypervisorError(
                _("Namespaced elements (such as <qemu:commandline>) are not accepted."), code="forbidden-xml"
            )
    name = validate_name(root.findtext("name", "").strip())
    devices = root.find("devices")
    paths: list[str] = []
    if devices is not None:
        for device in devices:
            if device.tag in _FORBIDDEN_DEVICES:
                raise HypervisorError(
                    _("<%(tag)s> devices are not accepted here.") % {"tag": device.tag}, code="forbidden-xml"
                )
            if device.tag == "interface" and (device.find("script") is not None or device.get("type") == "ethernet"):
                raise HypervisorError(_("Interfaces with host scripts are not accepted."), code="forbidden-xml")
            if device.tag == "disk":
                paths.extend(_disk_paths(device))
            if device.tag in {"emulator"}:
                raise HypervisorError(_("The emulator binary cannot be chosen in uploaded XML."), code="forbidden-xml")
    return UploadedDomain(name=name, uuid=root.findtext("uuid", "").strip(), file_paths=tuple(paths))


def _inside_metadata(root: ET.Element, element: ET.Element) -> bool:
    metadata = root.find("metadata")
    return metadata is not None and any(child is element for child in metadata.iter())


def _disk_paths(disk: ET.Element) -> list[str]:
    disk_type = disk.get("type", "file")
    if disk_type not in _ALLOWED_DISK_TYPES:
        raise HypervisorError(
            _("Disks of type '%(type)s' are not accepted; use files or volumes in a storage pool.")
            % {"type": disk_type},
            code="forbidden-xml",
        )
    paths = []
    for source in disk.iter("source"):
        if source.get("file"):
            paths.append(source.get("file"))
    backing = disk.find("backingStore")
    if backing is not None and backing.get("type") not in {None, "file"}:
        raise HypervisorError(_("Disk backing stores must be files in a storage pool."), code="forbidden-xml")
    return paths


MACHINE_TYPES = ("q35", "pc")  # q35: PCIe, SATA CD-ROM; pc (i440fx): PCI, IDE CD-ROM, for old guests
DISK_BUSES = ("virtio", "sata", "scsi", "ide")
NIC_MODELS = ("virtio", "e1000e", "e1000", "rtl8139")
DISK_FORMATS = ("qcow2", "raw")
CLOCK_OFFSETS = ("utc", "localtime")
# Which disk buses each machine type has: q35 has no IDE controller, i440fx has no AHCI one built in.
MACHINE_DISK_BUSES = {"q35": ("virtio", "sata", "scsi"), "pc": ("virtio", "scsi", "ide")}
_CDROM_BUS = {"q35": "sata", "pc": "ide"}
_TARGET_PREFIX = {"virtio": "vd", "sata": "sd", "scsi": "sd", "ide": "hd"}
# Devices that take a PCIe root port of their own on q35 besides the disk and NIC: virtio-serial (the
# guest agent channel), the balloon and the USB controller libvirt always adds (measured on libvirt 9).
_Q35_BASE_PORTS = 3


@dataclass
class DomainSpec:
    """What the panel needs to define a VM: the create wizard's choices, the demo and the test guests.

    Memory follows the handbook's `--memory 2048,maxmemory=4096` (seed §3.3, §7.4): `max_memory_mib`
    is libvirt's `<memory>` and `memory_mib` its `<currentMemory>`, so `virsh setmem --live` can grow
    the guest up to the maximum with no reboot. vCPUs likewise: `max_vcpus` are defined, `vcpus` are
    online, and `virsh setvcpus --live` adds the rest.
    """

    name: str
    memory_mib: int = 256
    max_memory_mib: int = 256
    vcpus: int = 1
    max_vcpus: int = 2
    disk_path: str = ""
    disk_format: str = "qcow2"
    disk_bus: str = "virtio"
    cdrom_path: str = ""
    network: str = ""
    nic_model: str = "virtio"
    machine: str = "pc"
    domain_type: str = "qemu"  # "kvm" when the host has usable KVM, else TCG
    cpu_mode: str = ""  # "host-model" under KVM; empty lets QEMU choose (qemu64 under TCG)
    clock_offset: str = "utc"
    # Free PCIe root ports left for hot-plug on q35: libvirt only adds the ports the devices present
    # at define time need, and a root port itself cannot be hot-plugged (LAB.md §3.3).
    spare_root_ports: int = 4
    tablet: bool = False  # a USB tablet keeps the VNC pointer in step with the guest's
    serial_log: str = ""
    description: str = ""
    uuid: str = ""
    # "destroy" while an installer runs, so an installer that reboots at its end stops instead of
    # booting the installer again (what virt-install does); "restart" otherwise.
    on_reboot: str = "restart"


def _invalid_spec(message: str) -> HypervisorError:
    return HypervisorError(message, code="invalid-argument")


def _check_spec(spec: DomainSpec) -> None:
    validate_name(spec.name)
    if spec.machine not in MACHINE_TYPES:
        raise _invalid_spec(_("Unknown machine type %(value)r.") % {"value": spec.machine})
    if spec.disk_bus not in MACHINE_DISK_BUSES[spec.machine]:
        raise _invalid_spec(
            _("A %(machine)s machine has no %(bus)s disk bus.") % {"machine": spec.machine, "bus": spec.disk_bus}
        )
    if spec.nic_model not in NIC_MODELS:
        raise _invalid_spec(_("Unknown NIC model %(value)r.") % {"value": spec.nic_model})
    if spec.disk_format not in DISK_FORMATS:
        raise _invalid_spec(_("Unsupported disk format %(value)r.") % {"value": spec.disk_format})
    if spec.clock_offset not in CLOCK_OFFSETS or spec.on_reboot not in {"restart", "destroy"}:
        raise _invalid_spec(_("Unsupported clock or reboot setting."))
    if not 1 <= spec.vcpus <= spec.max_vcpus:
        raise _invalid_spec(_("The vCPUs must be between 1 and the maximum vCPUs."))
    if not 1 <= spec.memory_mib <= spec.max_memory_mib:
        raise _invalid_spec(_("The memory must be between 1 MiB and the maximum memory."))
    for path in (spec.disk_path, spec.cdrom_path):
        if path and (not path.startswith("/") or "/../" in path + "/"):
            raise _invalid_spec(_("Disk paths must be absolute paths inside a storage pool."))


class _Targets:
    """Guest device names per bus, in order: vda, vdb...; sda...; hda... (an IDE CD-ROM starts at hdc,
    the secondary master, as on a physical PC)."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def next(self, bus: str, *, first: str = "a") -> str:
        prefix = _TARGET_PREFIX[bus]
        for letter in "abcdefghijklmnopqrstuvwxyz"[ord(first) - ord("a") :]:
            if prefix + letter not in self.used:
                self.used.add(prefix + letter)
                return prefix + letter
        raise _invalid_spec(_("Too many disks on the %(bus)s bus.") % {"bus": bus})


def build_domain_xml(spec: DomainSpec) -> str:
    """A hot-plug-ready machine: ACPI everywhere; on q35 spare PCIe root ports; on pc (i440fx) ACPI
    PCI hot-plug needs no extra controllers. VNC listens on a unix socket (no TCP port)."""
    _check_spec(spec)
    domain = ET.Element("domain", type=spec.domain_type)
    ET.SubElement(domain, "name").text = spec.name
    if spec.uuid:
        ET.SubElement(domain, "uuid").text = spec.uuid
    if spec.description:
        ET.SubElement(domain, "description").text = spec.description
    ET.SubElement(domain, "memory", unit="MiB").text = str(spec.max_memory_mib)
    ET.SubElement(domain, "currentMemory", unit="MiB").text = str(spec.memory_mib)
    ET.SubElement(domain, "vcpu", placement="static", current=str(spec.vcpus)).text = str(spec.max_vcpus)
    os_element = ET.SubElement(domain, "os")
    ET.SubElement(os_element, "type", arch="x86_64", machine=spec.machine).text = "hvm"
    features = ET.SubElement(domain, "features")
    ET.SubElement(features, "acpi")
    ET.SubElement(features, "apic")
    if spec.cpu_mode:
        ET.SubElement(domain, "cpu", mode=spec.cpu_mode)
    ET.SubElement(domain, "clock", offset=spec.clock_offset)
    ET.SubElement(domain, "on_poweroff").text = "destroy"
    ET.SubElement(domain, "on_reboot").text = spec.on_reboot
    ET.SubElement(domain, "on_crash").text = "destroy"
    devices = ET.SubElement(domain, "devices")
    targets = _Targets()
    boot_order = 1
    if spec.disk_path:
        disk = ET.SubElement(devices, "disk", type="file", device="disk")
        ET.SubElement(disk, "driver", name="qemu", type=spec.disk_format, discard="unmap")
        ET.SubElement(disk, "source", file=spec.disk_path)
        ET.SubElement(disk, "target", dev=targets.next(spec.disk_bus), bus=spec.disk_bus)
        # An empty disk is skipped by the BIOS, so the CD-ROM (next in order) boots the installer.
        ET.SubElement(disk, "boot", order=str(boot_order))
        boot_order += 1
    if spec.cdrom_path:
        cdrom_bus = _CDROM_BUS[spec.machine]
        cdrom = ET.SubElement(devices, "disk", type="file", device="cdrom")
        ET.SubElement(cdrom, "driver", name="qemu", type="raw")
        ET.SubElement(cdrom, "source", file=spec.cdrom_path)
        ET.SubElement(
            cdrom, "target", dev=targets.next(cdrom_bus, first="c" if cdrom_bus == "ide" else "a"), bus=cdrom_bus
        )
        ET.SubElement(cdrom, "readonly")
        ET.SubElement(cdrom, "boot", order=str(boot_order))
    if spec.disk_bus == "scsi":
        ET.SubElement(devices, "controller", type="scsi", model="virtio-scsi")
    if spec.machine == "q35":
        ET.SubElement(devices, "controller", type="pci", index="0", model="pcie-root")
        # libvirt puts the devices on these ports first and adds more only when they run out, so
        # defining the devices' ports plus the spares leaves the spares free.
        # A virtio disk, the virtio-scsi controller and any NIC take a port; SATA is built into q35.
        disk_port = bool(spec.disk_path) and spec.disk_bus in {"virtio", "scsi"}
        wanted = _Q35_BASE_PORTS + spec.spare_root_ports + disk_port + bool(spec.network)
        for _index in range(wanted):
            ET.SubElement(devices, "controller", type="pci", model="pcie-root-port")
    if spec.network:
        nic = ET.SubElement(devices, "interface", type="network")
        ET.SubElement(nic, "source", network=spec.network)
        ET.SubElement(nic, "model", type=spec.nic_model)
    channel = ET.SubElement(devices, "channel", type="unix")
    ET.SubElement(channel, "target", type="virtio", name="org.qemu.guest_agent.0")
    serial = ET.SubElement(devices, "serial", type="pty")
    if spec.serial_log:
        ET.SubElement(serial, "log", file=spec.serial_log, append="on")
    ET.SubElement(devices, "console", type="pty")
    if spec.tablet:
        ET.SubElement(devices, "input", type="tablet", bus="usb")
    graphics = ET.SubElement(devices, "graphics", type="vnc")
    ET.SubElement(graphics, "listen", type="socket")
    video = ET.SubElement(devices, "video")
    ET.SubElement(video, "model", type="vga")
    ET.SubElement(devices, "memballoon", model="virtio")
    return ET.tostring(domain, encoding="unicode")


def eject_cdroms(xml_text: str, *, on_reboot: str = "restart") -> str:
    """The domain with every CD-ROM emptied and out of the boot order (`virsh change-media --eject
    --config`), and the given reboot action: what an install ends with, before booting from disk."""
    root = _parse(xml_text)
    devices = root.find("devices")
    for disk in devices.iterfind("disk") if devices is not None else ():
        if disk.get("device") != "cdrom":
            continue
        for child in [c for c in disk if c.tag in {"source", "boot", "backingStore"}]:
            disk.remove(child)
    reboot = root.find("on_reboot")
    if reboot is None:
        reboot = ET.SubElement(root, "on_reboot")
    reboot.text = on_reboot
    return ET.tostring(root, encoding="unicode")


def cdrom_sources(xml_text: str) -> list[str]:
    """The media in the domain's CD-ROM drives (empty drives left out)."""
    return [disk.source for disk in parse_devices(xml_text).disks if disk.device == "cdrom" and disk.source]
