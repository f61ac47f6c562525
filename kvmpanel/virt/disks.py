"""A domain's disks (seed §5.5, §5.6, hot-plug): read them, attach and detach, grow, CD-ROM media,
repoint a disk at another volume, and copy a running VM's disk with `blockCopy`.

Every `<disk>` element is built with ElementTree. Callers validate names, sizes and pool paths before
they get here; this module still refuses what would hurt (shrinking, a cdrom that is not a cdrom).
"""

import contextlib
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, replace

import libvirt
from django.utils.translation import gettext as _

from kvmpanel.virt.connection import call
from kvmpanel.virt.domain import _lookup
from kvmpanel.virt.errors import HypervisorError

DISK_FORMATS = ("qcow2", "raw")
_INACTIVE = libvirt.VIR_DOMAIN_XML_INACTIVE
# Redefining a domain from its XML must keep secrets (VNC passwords) that plain XMLDesc leaves out.
_REDEFINE = libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE
_ACTIVE_STATES = {libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_BLOCKED, libvirt.VIR_DOMAIN_PAUSED}


@dataclass(frozen=True)
class Disk:
    target: str  # guest device: vda, hdc
    bus: str  # virtio, ide, sata, scsi
    device: str  # disk, cdrom
    source: str  # file path, or "" for an empty CD-ROM drive
    format: str  # driver type: qcow2, raw
    readonly: bool = False
    shareable: bool = False
    pool: str = ""  # the storage pool holding `source`, when libvirt knows it
    capacity_bytes: int = 0  # what the guest sees
    allocation_bytes: int = 0  # what the file uses on the host

    @property
    def writable(self) -> bool:
        return self.device == "disk" and not self.readonly


def _source_path(disk: ET.Element) -> str:
    source = disk.find("source")
    if source is None:
        return ""
    return source.get("file") or source.get("dev") or ""


def parse_disks(xml_text: str) -> tuple[Disk, ...]:
    """Every `<disk>` of a domain XML, in document order."""
    root = ET.fromstring(xml_text)  # noqa: S314 - libvirt's own XML
    disks = []
    for element in root.iterfind("./devices/disk"):
        target = element.find("target")
        driver = element.find("driver")
        disks.append(
            Disk(
                target=target.get("dev", "") if target is not None else "",
                bus=target.get("bus", "") if target is not None else "",
                device=element.get("device", "disk"),
                source=_source_path(element),
                format=driver.get("type", "") if driver is not None else "",
                readonly=element.find("readonly") is not None,
                shareable=element.find("shareable") is not None,
            )
        )
    return tuple(disks)


def _disk_element(root: ET.Element, target: str) -> ET.Element | None:
    for element in root.iterfind("./devices/disk"):
        found = element.find("target")
        if found is not None and found.get("dev") == target:
            return element
    return None


def _is_active(dom: libvirt.virDomain) -> bool:
    return dom.state()[0] in _ACTIVE_STATES


def _volume(conn: libvirt.virConnect, path: str) -> libvirt.virStorageVol | None:
    """The pool volume at `path`; pools are refreshed once when libvirt has not seen the file yet."""
    for attempt in range(2):
        try:
            return conn.storageVolLookupByPath(path)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() != libvirt.VIR_ERR_NO_STORAGE_VOL:
                raise
        if attempt == 0:
            for pool in conn.listAllStoragePools(libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE):
                # A pool with a copy in progress refuses a refresh; its list is current enough.
                with contextlib.suppress(libvirt.libvirtError):
                    pool.refresh(0)
    return None


def _pool_and_sizes(volume: libvirt.virStorageVol) -> tuple[str, int, int]:
    _kind, capacity, allocation = volume.info()
    return volume.storagePoolLookupByVolume().name(), capacity, allocation


def list_disks(uri: str, uuid: str, *, inactive: bool = False, with_sizes: bool = True) -> tuple[Disk, ...]:
    """The domain's disks (`virsh domblklist --details`), with pool and sizes (`virsh domblkinfo`)."""

    def run(conn: libvirt.virConnect) -> tuple[Disk, ...]:
        dom = _lookup(conn, uuid)
        disks = parse_disks(dom.XMLDesc(_INACTIVE if inactive else 0))
        if not with_sizes:
            return disks
        active = not inactive and _is_active(dom)
        described = []
        for disk in disks:
            pool, capacity, allocation = "", 0, 0
            if disk.source.startswith("/"):
                with contextlib.suppress(libvirt.libvirtError):
                    volume = _volume(conn, disk.source)
                    if volume is not None:
                        pool, capacity, allocation = _pool_and_sizes(volume)
                if active:  # the running guest's view wins: it follows a live resize at once
                    with contextlib.suppress(libvirt.libvirtError):
                        capacity, allocation, _physical = dom.blockInfo(disk.target)
            described.append(replace(disk, pool=pool, capacity_bytes=capacity, allocation_bytes=allocation))
        return tuple(described)

    return call(uri, run)


def volume_users(uri: str, path: str) -> list[str]:
    """Names of the domains whose running or persistent definition uses the file at `path`."""

    def run(conn: libvirt.virConnect) -> list[str]:
        users = []
        for dom in conn.listAllDomains(0):
            definitions = [dom.XMLDesc(0)]
            if dom.isPersistent() and _is_active(dom):
                definitions.append(dom.XMLDesc(_INACTIVE))
            if any(disk.source == path for xml_text in definitions for disk in parse_disks(xml_text)):
                users.append(dom.name())
        return users

    return call(uri, run)


def disk_xml(*, path: str, target: str, fmt: str, bus: str = "virtio", device: str = "disk") -> str:
    """One `<disk type='file'>` element, as `virsh attach-disk --driver qemu --subdriver FMT` makes it.
    A CD-ROM with no `path` is an empty drive (ejected)."""
    if fmt not in (*DISK_FORMATS, "iso"):
        raise HypervisorError(_("Unsupported disk format %(format)r.") % {"format": fmt}, code="invalid-argument")
    disk = ET.Element("disk", type="file", device=device)
    # QEMU reads an ISO 9660 image as raw bytes.
    ET.SubElement(disk, "driver", name="qemu", type="raw" if fmt == "iso" else fmt)
    if path:
        ET.SubElement(disk, "source", file=path)
    ET.SubElement(disk, "target", dev=target, bus=bus)
    if device == "cdrom":
        ET.SubElement(disk, "readonly")
    return ET.tostring(disk, encoding="unicode")


def _affect(live: bool, config: bool) -> int:
    if not (live or config):
        raise HypervisorError(_("Choose the running VM, its configuration, or both."), code="invalid-argument")
    return (libvirt.VIR_DOMAIN_AFFECT_LIVE if live else 0) | (libvirt.VIR_DOMAIN_AFFECT_CONFIG if config else 0)


def attach(uri: str, uuid: str, xml_text: str, *, live: bool, config: bool) -> None:
    """`virsh attach-disk ... [--live] [--config]`."""
    flags = _affect(live, config)
    call(uri, lambda conn: _lookup(conn, uuid).attachDeviceFlags(xml_text, flags))


def detach(uri: str, uuid: str, target: str, *, live: bool, config: bool, wait_seconds: float = 15) -> None:
    """`virsh detach-disk NAME TARGET [--live] [--config]`.

    A live detach asks the guest to release the device (ACPI or PCIe hot-unplug); libvirt waits a few
    seconds for it, then returns while the guest may still hold the disk. This waits until the disk
    has really left the running VM, and fails with code "timeout" when the guest never lets go.
    """
    flags = _affect(live, config)

    def run(conn: libvirt.virConnect) -> None:
        dom = _lookup(conn, uuid)
        element = _disk_element(ET.fromstring(dom.XMLDesc(0 if live else _INACTIVE)), target)  # noqa: S314
        if element is None:
            raise HypervisorError(_("The VM has no disk %(target)s.") % {"target": target}, code="no-disk")
        dom.detachDeviceFlags(ET.tostring(element, encoding="unicode"), flags)

    call(uri, run)
    if not live:
        return
    deadline = time.monotonic() + wait_seconds
    while any(disk.target == target for disk in list_disks(uri, uuid, with_sizes=False)):
        if time.monotonic() > deadline:
            raise HypervisorError(
                _("The guest has not released %(target)s yet; it leaves the running VM when the guest allows it.")
                % {"target": target},
                code="timeout",
            )
        time.sleep(0.2)


def grow_live(uri: str, uuid: str, target: str, size_bytes: int) -> None:
    """`virsh blockresize NAME TARGET SIZE` on a running VM: the guest sees the new size at once.
    Never shrinks. (A shut-off VM's disk grows through its volume: kvmpanel.virt.storage.resize_volume.)"""

    def run(conn: libvirt.virConnect) -> None:
        dom = _lookup(conn, uuid)
        if not any(d.target == target and d.device == "disk" for d in parse_disks(dom.XMLDesc(0))):
            raise HypervisorError(_("The VM has no disk %(target)s.") % {"target": target}, code="no-disk")
        capacity = dom.blockInfo(target)[0]
        if size_bytes <= capacity:
            raise HypervisorError(
                _("Disks only grow: %(target)s already has %(capacity)d bytes.")
                % {"target": target, "capacity": capacity},
                code="shrink",
            )
        dom.blockResize(target, size_bytes, libvirt.VIR_DOMAIN_BLOCK_RESIZE_BYTES)

    call(uri, run)


TRAY_ATTEMPTS = 3
TRAY_RETRY_SECONDS = 1.0


def set_media(uri: str, uuid: str, target: str, path: str, *, live: bool, config: bool) -> None:
    """`virsh change-media NAME TARGET PATH --insert|--eject [--live] [--config]`; an empty `path`
    ejects. The drive keeps its bus; only CD-ROM drives are accepted."""
    flags = _affect(live, config)

    def run(conn: libvirt.virConnect) -> None:
        dom = _lookup(conn, uuid)
        drive = next((d for d in parse_disks(dom.XMLDesc(0 if live else _INACTIVE)) if d.target == target), None)
        if drive is None or drive.device != "cdrom":
            raise HypervisorError(_("The VM has no CD-ROM drive %(target)s.") % {"target": target}, code="no-disk")
        xml_text = disk_xml(path=path, target=target, fmt="raw", bus=drive.bus, device="cdrom")
        for attempt in range(TRAY_ATTEMPTS):
            # A running guest opens the tray when QEMU asks; a guest still booting (or busy) can take
            # longer than libvirt waits, and the change fails with "Tray of device ... is not open".
            # Ask again, and the last time force it (virsh change-media --force), as the operator asked.
            force = libvirt.VIR_DOMAIN_DEVICE_MODIFY_FORCE if live and attempt == TRAY_ATTEMPTS - 1 else 0
            try:
                dom.updateDeviceFlags(xml_text, flags | force)
                return
            except libvirt.libvirtError as error:
                if "Tray of device" not in str(error) or attempt == TRAY_ATTEMPTS - 1:
                    raise
                time.sleep(TRAY_RETRY_SECONDS)

    call(uri, run)


def repoint(uri: str, uuid: str, target: str, path: str, fmt: str) -> None:
    """Point disk `target` of the persistent definition at another file: its `<source>` and its driver
    type change together (seed §5.5, `virsh edit`), or QEMU would read a qcow2 file as raw."""
    if fmt not in DISK_FORMATS:
        raise HypervisorError(_("Unsupported disk format %(format)r.") % {"format": fmt}, code="invalid-argument")

    def run(conn: libvirt.virConnect) -> None:
        dom = _lookup(conn, uuid)
        if not dom.isPersistent():
            raise HypervisorError(_("A transient VM has no definition to change."), code="invalid-state")
        root = ET.fromstring(dom.XMLDesc(_REDEFINE))  # noqa: S314 - libvirt's own XML
        disk = _disk_element(root, target)
        if disk is None or disk.get("device", "disk") != "disk":
            raise HypervisorError(_("The VM has no disk %(target)s.") % {"target": target}, code="no-disk")
        disk.set("type", "file")
        for stale in disk.findall("source") + disk.findall("backingStore"):
            disk.remove(stale)
        driver = disk.find("driver")
        if driver is None:
            driver = ET.Element("driver", name="qemu")
            disk.insert(0, driver)
        driver.set("type", fmt)
        disk.insert(list(disk).index(driver) + 1, ET.Element("source", file=path))
        conn.defineXML(ET.tostring(root, encoding="unicode"))

    call(uri, run)


def is_active(uri: str, uuid: str) -> bool:
    return call(uri, lambda conn: _is_active(_lookup(conn, uuid)))


def copy_live(
    uri: str,
    uuid: str,
    target: str,
    destination: str,
    fmt: str,
    *,
    progress: Callable[[int, int], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
    timeout_seconds: float = 6 * 3600,
) -> None:
    """Move a running VM's disk onto `destination` (an existing, empty volume of the right size and
    format): `virsh blockcopy NAME TARGET DEST --reuse-external --transient-job --wait --pivot`.

    QEMU mirrors the disk while the guest keeps writing; once source and copy are in step the VM is
    switched over (pivot) and libvirt points the persistent definition at the copy too. Cancel (or a
    failure) aborts the mirror, and the VM stays on its old disk; the caller deletes the copy.
    """
    dest = ET.Element("disk", type="file")
    ET.SubElement(dest, "driver", type=fmt)
    ET.SubElement(dest, "source", file=destination)
    dest_xml = ET.tostring(dest, encoding="unicode")
    flags = libvirt.VIR_DOMAIN_BLOCK_COPY_REUSE_EXT | libvirt.VIR_DOMAIN_BLOCK_COPY_TRANSIENT_JOB
    call(uri, lambda conn: _lookup(conn, uuid).blockCopy(target, dest_xml, {}, flags))
    deadline = time.monotonic() + timeout_seconds
    try:
        while True:
            info, ready = call(uri, lambda conn: _mirror_state(_lookup(conn, uuid), target))
            if not info:
                raise HypervisorError(_("The disk copy stopped before it was complete."), code="failed")
            if progress is not None:
                progress(int(info["cur"]), int(info["end"]))
            if ready:
                break
            if cancelled is not None and cancelled():
                raise HypervisorError(_("The copy was cancelled."), code="cancelled")
            if time.monotonic() > deadline:
                raise HypervisorError(_("The disk copy did not finish in time."), code="timeout")
            time.sleep(0.2)
        call(uri, lambda conn: _lookup(conn, uuid).blockJobAbort(target, libvirt.VIR_DOMAIN_BLOCK_JOB_ABORT_PIVOT))
    except HypervisorError:
        abort_copy(uri, uuid, target)
        raise
    # The pivot completes asynchronously: wait until the running VM really reads the copy.
    while not any(d.target == target and d.source == destination for d in list_disks(uri, uuid, with_sizes=False)):
        if time.monotonic() > deadline:
            raise HypervisorError(_("The VM did not switch to the copied disk."), code="timeout")
        time.sleep(0.1)


def _mirror_state(dom: libvirt.virDomain, target: str) -> tuple[dict, bool]:
    info = dom.blockJobInfo(target, 0) or {}
    disk = _disk_element(ET.fromstring(dom.XMLDesc(0)), target)  # noqa: S314 - libvirt's own XML
    mirror = disk.find("mirror") if disk is not None else None
    return info, mirror is not None and mirror.get("ready") == "yes"


def abort_copy(uri: str, uuid: str, target: str) -> None:
    """Stop a running block copy of `target` without switching over (`virsh blockjob --abort`)."""

    def run(conn: libvirt.virConnect) -> None:
        dom = _lookup(conn, uuid)
        with contextlib.suppress(libvirt.libvirtError):
            if dom.blockJobInfo(target, 0):
                dom.blockJobAbort(target, 0)

    with contextlib.suppress(HypervisorError):
        call(uri, run)
