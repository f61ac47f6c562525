"""Clone a domain the way `virt-clone` does (seed §5.4), minus its traps (LAB.md §3.3).

`clone_disks` reads which of the source's disks are copied (writable disks, each a volume of a
storage pool) and which are shared (CD-ROMs, read-only and shareable disks). `rewrite_for_clone`
turns the source's inactive XML into the clone's: new name and UUID, new MACs, the copied disks'
new paths, a console endpoint libvirt chooses afresh, and serial logs of its own (virt-clone keeps
the original's log path, so both VMs would write one file).
"""

import posixpath
import random
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import libvirt
from django.utils.translation import gettext as _

from kvmpanel.virt import xml as domain_xml
from kvmpanel.virt.connection import call
from kvmpanel.virt.errors import HypervisorError

# QEMU's own prefix for locally administered MACs, as virt-clone and virt-install use it.
MAC_PREFIX = (0x52, 0x54, 0x00)


@dataclass(frozen=True)
class CloneDisk:
    target: str  # guest device name, e.g. "vda"
    source: str  # the source's path on the host
    copy: bool  # False: shared with the clone (CD-ROM, read-only or shareable)
    pool: str = ""  # the source volume's pool (copied disks only)
    volume: str = ""  # the source volume's name
    format: str = ""  # "qcow2", "raw"
    capacity_bytes: int = 0
    allocation_bytes: int = 0


def _copied(disk: ET.Element) -> bool:
    return disk.get("device", "disk") == "disk" and disk.find("readonly") is None and disk.find("shareable") is None


def clone_disks(uri: str, uuid: str) -> list[CloneDisk]:
    """The source domain's disks and what cloning does with each.

    Fails (code "not-in-pool") when a disk that would be copied is not a volume of a storage pool:
    the copy is made with libvirt's storage API, and disk paths only ever come from pools.
    """

    def run(conn: libvirt.virConnect) -> list[CloneDisk]:
        try:
            dom = conn.lookupByUUIDString(uuid)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                raise HypervisorError(_("The VM no longer exists on its host."), code="no-domain") from exc
            raise
        root = ET.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))  # noqa: S314 - libvirt's own XML
        disks = []
        for disk in root.iterfind("./devices/disk"):
            target = disk.find("target")
            dev = target.get("dev", "") if target is not None else ""
            source = disk.find("source")
            path = _source_path(conn, source)
            if not _copied(disk) or not path:
                # Shared as it is (an empty drive has nothing to copy either).
                disks.append(CloneDisk(target=dev, source=path, copy=False))
                continue
            try:
                volume = conn.storageVolLookupByPath(path)
            except libvirt.libvirtError as exc:
                raise HypervisorError(
                    _("Disk %(target)s (%(path)s) is not a volume of a storage pool, so it cannot be copied.")
                    % {"target": dev, "path": path},
                    code="not-in-pool",
                ) from exc
            _kind, capacity, allocation = volume.info()
            volume_root = ET.fromstring(volume.XMLDesc(0))  # noqa: S314 - libvirt's own XML
            format_element = volume_root.find("./target/format")
            disks.append(
                CloneDisk(
                    target=dev,
                    source=path,
                    copy=True,
                    pool=volume.storagePoolLookupByVolume().name(),
                    volume=volume.name(),
                    format=format_element.get("type", "raw") if format_element is not None else "raw",
                    capacity_bytes=int(capacity),
                    allocation_bytes=int(allocation),
                )
            )
        return disks

    return call(uri, run)


def _source_path(conn: libvirt.virConnect, source: ET.Element | None) -> str:
    if source is None:
        return ""
    if source.get("file"):
        return source.get("file")
    if source.get("pool") and source.get("volume"):
        pool = conn.storagePoolLookupByName(source.get("pool"))
        return pool.storageVolLookupByName(source.get("volume")).path()
    return source.get("dev", "")


def clone_volume_name(source_volume: str, clone_name: str, index: int) -> str:
    """The copy's volume name, like virt-clone's: the clone's name with the source's extension, and
    a `-N` suffix from the second copied disk on ("web.qcow2" → "web-clone.qcow2", "web-clone-1.qcow2")."""
    _stem, dot, extension = source_volume.rpartition(".")
    if not dot or not extension.isalnum() or len(extension) > 5:
        extension = ""
    suffix = f"-{index}" if index else ""
    return f"{clone_name}{suffix}{'.' + extension if extension else ''}"


def random_mac(taken: set[str] = frozenset()) -> str:
    """A fresh 52:54:00:xx:xx:xx address not in `taken`."""
    generator = random.SystemRandom()
    while True:
        mac = ":".join(f"{octet:02x}" for octet in (*MAC_PREFIX, *(generator.randrange(256) for _ in range(3))))
        if mac not in taken:
            return mac


def _renamed_path(path: str, old_name: str, new_name: str, fallback_suffix: str) -> str:
    """`path` with the old VM name in its file name replaced by the new one; a fresh file next to it
    when the old name is not in it (two VMs must never append to one log)."""
    directory, base = posixpath.split(path)
    if old_name and old_name in base:
        return posixpath.join(directory, base.replace(old_name, new_name, 1))
    return posixpath.join(directory, f"{new_name}{fallback_suffix}")


def rewrite_for_clone(
    xml_text: str, *, name: str, uuid: str = "", disk_paths: dict[str, str], taken_macs: set[str] = frozenset()
) -> str:
    """The clone's domain XML, from the source's inactive XML.

    `disk_paths` maps each copied disk's target ("vda") to its copy's path; every other disk keeps
    its source (shared). Without `uuid` libvirt picks one.
    """
    domain_xml.validate_name(name)
    root = ET.fromstring(xml_text)  # noqa: S314 - the source's XML as libvirt wrote it
    old_name = root.findtext("name", "")
    root.find("name").text = name
    uuid_element = root.find("uuid")
    if uuid_element is not None:
        root.remove(uuid_element)
    if uuid:
        root.insert(1, _element("uuid", text=uuid))
    _forget_nvram(root)
    devices = root.find("devices")
    if devices is None:
        return ET.tostring(root, encoding="unicode")
    for emulator in devices.findall("emulator"):
        devices.remove(emulator)  # the host's default, as for every VM the panel defines
    for disk in devices.iterfind("disk"):
        target = disk.find("target")
        dev = target.get("dev", "") if target is not None else ""
        if dev not in disk_paths:
            continue
        for child in [c for c in disk if c.tag in {"source", "backingStore"}]:
            disk.remove(child)
        disk.set("type", "file")
        driver_index = next((i for i, c in enumerate(disk) if c.tag == "driver"), -1)
        disk.insert(driver_index + 1, _element("source", file=disk_paths[dev]))
    macs = set(taken_macs)
    for interface in devices.iterfind("interface"):
        mac = interface.find("mac")
        if mac is None:
            mac = _element("mac")
            interface.insert(0, mac)
        macs.add(mac.get("address", "").lower())
        mac.set("address", random_mac(macs))
        macs.add(mac.get("address"))
        for child in [c for c in interface if c.tag == "target"]:
            interface.remove(child)  # the host-side tap device (vnetN) is named at start
    for graphics in devices.iterfind("graphics"):
        _reset_graphics(graphics)
    for device in [*devices.iterfind("serial"), *devices.iterfind("console"), *devices.iterfind("channel")]:
        _rename_character_device(device, old_name, name)
    return ET.tostring(root, encoding="unicode")


def _element(tag: str, *, text: str | None = None, **attributes: str) -> ET.Element:
    element = ET.Element(tag, attributes)
    element.text = text
    return element


def _forget_nvram(root: ET.Element) -> None:
    """UEFI variables are per VM: libvirt makes the clone its own from the template."""
    os_element = root.find("os")
    nvram = os_element.find("nvram") if os_element is not None else None
    if nvram is not None:
        if nvram.get("template"):
            nvram.text = None
        else:
            os_element.remove(nvram)


def _reset_graphics(graphics: ET.Element) -> None:
    """The clone gets its own console endpoint: automatic ports, and a socket libvirt names after it."""
    for attribute in ("port", "tlsPort", "websocket", "socket"):
        graphics.attrib.pop(attribute, None)
    if graphics.get("type") in {"vnc", "spice"} and graphics.find("listen[@type='socket']") is None:
        graphics.set("autoport", "yes")
    for listen in graphics.iterfind("listen"):
        if listen.get("type") == "socket":
            listen.attrib.pop("socket", None)


def _rename_character_device(device: ET.Element, old_name: str, new_name: str) -> None:
    log = device.find("log")
    if log is not None and log.get("file"):
        log.set("file", _renamed_path(log.get("file"), old_name, new_name, "-serial.log"))
    source = device.find("source")
    if source is None or device.get("type") not in {"file", "unix"} or not source.get("path"):
        return
    if device.get("type") == "unix" and device.tag == "channel":
        source.attrib.pop("path", None)  # libvirt names the clone's agent socket itself, after the clone
        return
    source.set("path", _renamed_path(source.get("path"), old_name, new_name, f"-{device.tag}.log"))
