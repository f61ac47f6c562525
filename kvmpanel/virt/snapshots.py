"""Internal qcow2 snapshots (seed §5.7: `virsh snapshot-create-as / -list --tree / -revert / -delete`).

Only internal snapshots: the disk state lives inside each qcow2 file, and a running VM's memory is
saved with it. External (`--disk-only`) snapshots are refused everywhere, because mixing the two
kinds breaks the internal ones (LAB.md §3.3); a raw disk cannot hold an internal snapshot, so a VM
with a writable raw disk is refused before libvirt is asked.
"""

import xml.etree.ElementTree as ET
from dataclasses import dataclass, replace

import libvirt
from django.utils.translation import gettext as _

from kvmpanel.virt.connection import call
from kvmpanel.virt.disks import Disk, parse_disks
from kvmpanel.virt.domain import _lookup
from kvmpanel.virt.errors import HypervisorError
from kvmpanel.virt.xml import NAME_PATTERN

MAX_DESCRIPTION = 1000
_ACTIVE_STATES = {libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_BLOCKED, libvirt.VIR_DOMAIN_PAUSED}


@dataclass(frozen=True)
class Snapshot:
    name: str
    description: str
    state: str  # the VM's state when it was taken: running, paused, shutoff
    created: int  # Unix time
    parent: str  # "" for a root
    children: tuple[str, ...]
    current: bool  # the VM's disks continue from this one (`virsh snapshot-current`)
    memory: bool  # the guest's RAM was saved too: reverting resumes the running guest
    external: bool  # made outside the panel with --disk-only: shown, never reverted or deleted here
    depth: int = 0  # in tree order: how many ancestors it has


def validate_snapshot_name(name: object) -> str:
    if not isinstance(name, str) or not name.isascii() or not NAME_PATTERN.match(name) or ".." in name:
        raise HypervisorError(
            _(
                "A snapshot name is 1-63 ASCII characters: letters, digits, '.', '_' or '-', starting with a "
                "letter or digit, and never '..'."
            ),
            code="invalid-name",
        )
    return name


def raw_disk_refusal(disks: tuple[Disk, ...]) -> str:
    """Why this VM cannot have an internal snapshot, or "" when it can."""
    for disk in disks:
        if disk.writable and disk.format != "qcow2":
            return _("Internal snapshots need qcow2 disks; convert disk %(target)s (%(format)s) to qcow2 first.") % {
                "target": disk.target,
                "format": disk.format or "raw",
            }
    return ""


def _parse(snapshot: libvirt.virDomainSnapshot, current: str) -> Snapshot:
    root = ET.fromstring(snapshot.getXMLDesc(0))  # noqa: S314 - libvirt's own XML
    memory = root.find("memory")
    memory_kind = memory.get("snapshot", "no") if memory is not None else "no"
    disk_kinds = {disk.get("snapshot", "") for disk in root.iterfind("./disks/disk")}
    return Snapshot(
        name=snapshot.getName(),
        description=root.findtext("description", ""),
        state=root.findtext("state", ""),
        created=int(root.findtext("creationTime", "0") or 0),
        parent=root.findtext("./parent/name", ""),
        children=(),
        current=snapshot.getName() == current,
        memory=memory_kind == "internal",
        external=memory_kind == "external" or "external" in disk_kinds,
    )


def _in_tree_order(found: list[Snapshot]) -> tuple[Snapshot, ...]:
    """Roots oldest first, each followed by its descendants (`virsh snapshot-list --tree`)."""
    by_parent: dict[str, list[Snapshot]] = {}
    names = {snapshot.name for snapshot in found}
    for snapshot in sorted(found, key=lambda s: (s.created, s.name)):
        by_parent.setdefault(snapshot.parent if snapshot.parent in names else "", []).append(snapshot)
    ordered: list[Snapshot] = []

    def walk(parent: str, depth: int) -> None:
        for snapshot in by_parent.get(parent, []):
            children = tuple(child.name for child in by_parent.get(snapshot.name, []))
            ordered.append(replace(snapshot, children=children, depth=depth))
            walk(snapshot.name, depth + 1)

    walk("", 0)
    return tuple(ordered)


def _current_name(dom: libvirt.virDomain) -> str:
    if not dom.hasCurrentSnapshot(0):
        return ""
    return dom.snapshotCurrent(0).getName()


def list_snapshots(uri: str, uuid: str) -> tuple[Snapshot, ...]:
    """`virsh snapshot-list NAME --tree`, with the current snapshot marked."""

    def run(conn: libvirt.virConnect) -> tuple[Snapshot, ...]:
        dom = _lookup(conn, uuid)
        current = _current_name(dom)
        return _in_tree_order([_parse(snapshot, current) for snapshot in dom.listAllSnapshots(0)])

    return call(uri, run)


def get_snapshot(uri: str, uuid: str, name: str) -> Snapshot:
    for snapshot in list_snapshots(uri, uuid):
        if snapshot.name == name:
            return snapshot
    raise HypervisorError(_("The VM has no snapshot named %(name)s.") % {"name": name}, code="no-snapshot")


def snapshot_xml(name: str, description: str, disks: tuple[Disk, ...], *, with_memory: bool) -> str:
    """Every writable disk internal, every read-only one (CD-ROMs) left out, RAM internal when running:
    nothing here can ever produce an external snapshot."""
    root = ET.Element("domainsnapshot")
    ET.SubElement(root, "name").text = validate_snapshot_name(name)
    if description:
        ET.SubElement(root, "description").text = description
    ET.SubElement(root, "memory", snapshot="internal" if with_memory else "no")
    listed = ET.SubElement(root, "disks")
    for disk in disks:
        ET.SubElement(listed, "disk", name=disk.target, snapshot="internal" if disk.writable else "no")
    return ET.tostring(root, encoding="unicode")


def create_snapshot(uri: str, uuid: str, name: str, description: str = "") -> Snapshot:
    """`virsh snapshot-create-as NAME SNAP --description TEXT` (internal; RAM too when running)."""
    validate_snapshot_name(name)
    if len(description) > MAX_DESCRIPTION:
        raise HypervisorError(
            _("A description is at most %(count)d characters.") % {"count": MAX_DESCRIPTION}, code="invalid-argument"
        )

    def run(conn: libvirt.virConnect) -> Snapshot:
        dom = _lookup(conn, uuid)
        disks = parse_disks(dom.XMLDesc(0))
        refusal = raw_disk_refusal(disks)
        if refusal:
            raise HypervisorError(refusal, code="raw-disk")
        running = dom.state()[0] in _ACTIVE_STATES
        snapshot = dom.snapshotCreateXML(snapshot_xml(name, description, disks, with_memory=running), 0)
        return _parse(snapshot, _current_name(dom))

    return call(uri, run)


def _internal(dom: libvirt.virDomain, name: str) -> libvirt.virDomainSnapshot:
    try:
        snapshot = dom.snapshotLookupByName(name, 0)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN_SNAPSHOT:
            raise HypervisorError(
                _("The VM has no snapshot named %(name)s.") % {"name": name}, code="no-snapshot"
            ) from exc
        raise
    if _parse(snapshot, "").external:
        raise HypervisorError(
            _("Snapshot %(name)s is external (made with --disk-only outside the panel); the panel leaves it alone.")
            % {"name": name},
            code="external-snapshot",
        )
    return snapshot


def revert_snapshot(uri: str, uuid: str, name: str) -> None:
    """`virsh snapshot-revert NAME SNAP`: the disks and, for a snapshot with RAM, the running guest
    come back as they were; a snapshot taken while running leaves the VM running."""

    def run(conn: libvirt.virConnect) -> None:
        dom = _lookup(conn, uuid)
        snapshot = _internal(dom, name)
        was_running = _parse(snapshot, "").state == "running"
        dom.revertToSnapshot(snapshot, libvirt.VIR_DOMAIN_SNAPSHOT_REVERT_RUNNING if was_running else 0)

    call(uri, run)


def delete_snapshot(uri: str, uuid: str, name: str) -> None:
    """`virsh snapshot-delete NAME SNAP`: its children are re-attached to its parent."""
    call(uri, lambda conn: _internal(_lookup(conn, uuid), name).delete(0))
