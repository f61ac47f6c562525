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


@dataclass
class DomainSpec:
    """What the panel needs to define a simple VM (the demo VM; later issues add templates)."""

    name: str
    memory_mib: int = 256
    max_memory_mib: int = 256
    vcpus: int = 1
    max_vcpus: int = 2
    disk_path: str = ""
    disk_format: str = "qcow2"
    cdrom_path: str = ""
    network: str = ""
    domain_type: str = "qemu"  # "kvm" when the host has usable KVM, else TCG
    serial_log: str = ""
    description: str = ""


def build_domain_xml(spec: DomainSpec) -> str:
    """A pc (i440fx) machine: ACPI PCI hot-plug of disks and NICs works with no extra controllers."""
    validate_name(spec.name)
    domain = ET.Element("domain", type=spec.domain_type)
    ET.SubElement(domain, "name").text = spec.name
    if spec.description:
        ET.SubElement(domain, "description").text = spec.description
    ET.SubElement(domain, "memory", unit="MiB").text = str(spec.max_memory_mib)
    ET.SubElement(domain, "currentMemory", unit="MiB").text = str(spec.memory_mib)
    ET.SubElement(domain, "vcpu", placement="static", current=str(spec.vcpus)).text = str(spec.max_vcpus)
    os_element = ET.SubElement(domain, "os")
    ET.SubElement(os_element, "type", arch="x86_64", machine="pc").text = "hvm"
    features = ET.SubElement(domain, "features")
    ET.SubElement(features, "acpi")
    ET.SubElement(features, "apic")
    ET.SubElement(domain, "on_poweroff").text = "destroy"
    ET.SubElement(domain, "on_reboot").text = "restart"
    ET.SubElement(domain, "on_crash").text = "destroy"
    devices = ET.SubElement(domain, "devices")
    boot_order = 1
    if spec.disk_path:
        disk = ET.SubElement(devices, "disk", type="file", device="disk")
        ET.SubElement(disk, "driver", name="qemu", type=spec.disk_format)
        ET.SubElement(disk, "source", file=spec.disk_path)
        ET.SubElement(disk, "target", dev="vda", bus="virtio")
        ET.SubElement(disk, "boot", order=str(boot_order))
        boot_order += 1
    if spec.cdrom_path:
        cdrom = ET.SubElement(devices, "disk", type="file", device="cdrom")
        ET.SubElement(cdrom, "driver", name="qemu", type="raw")
        ET.SubElement(cdrom, "source", file=spec.cdrom_path)
        ET.SubElement(cdrom, "target", dev="hdc", bus="ide")
        ET.SubElement(cdrom, "readonly")
        ET.SubElement(cdrom, "boot", order=str(boot_order))
    if spec.network:
        nic = ET.SubElement(devices, "interface", type="network")
        ET.SubElement(nic, "source", network=spec.network)
        ET.SubElement(nic, "model", type="virtio")
    channel = ET.SubElement(devices, "channel", type="unix")
    ET.SubElement(channel, "target", type="virtio", name="org.qemu.guest_agent.0")
    serial = ET.SubElement(devices, "serial", type="pty")
    if spec.serial_log:
        ET.SubElement(serial, "log", file=spec.serial_log, append="on")
    ET.SubElement(devices, "console", type="pty")
    graphics = ET.SubElement(devices, "graphics", type="vnc")
    ET.SubElement(graphics, "listen", type="socket")
    video = ET.SubElement(devices, "video")
    ET.SubElement(video, "model", type="vga")
    ET.SubElement(devices, "memballoon", model="virtio")
    return ET.tostring(domain, encoding="unicode")
