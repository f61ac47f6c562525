"""Copying a volume into a pool, with progress and cancel: what clone, convert and move are made of.

The copy is libvirt's `storageVolCreateXMLFrom`, which has libvirtd run `qemu-img convert` next to the
data (so remote hosts need no agent and raw↔qcow2 conversion and sparseness are qemu-img's own). That
call blocks and reports nothing, so it runs in a thread while this one polls the new volume's
allocation for progress and asks the caller whether to stop.

libvirt has no call to abort a volume build. Where the daemon is on this machine (a local socket:
`qemu:///system`, the lab hosts), cancel stops its `qemu-img` child, found by the daemon's mount
namespace (from the socket's peer credentials) and the target path in its command line; libvirt then
deletes the half-written volume itself. On a remote host the copy runs to its end and the volume is
deleted then: slower, but nothing is left behind either way.
"""

import os
import signal
import socket
import struct
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import libvirt
from django.utils.translation import gettext as _

from kvmpanel.virt.connection import call, translate
from kvmpanel.virt.connection import pool as connections
from kvmpanel.virt.errors import HypervisorError
from kvmpanel.virt.xml import validate_name

FORMATS = ("qcow2", "raw")
LOCAL_SOCKETS = ("/run/libvirt/virtstoraged-sock", "/run/libvirt/libvirt-sock")
QEMU_IMG = "qemu-img"

Progress = Callable[[int, int], None]


def _volume_format(volume: libvirt.virStorageVol) -> str:
    found = ET.fromstring(volume.XMLDesc(0)).find("./target/format")  # noqa: S314 - libvirt's own XML
    return found.get("type", "raw") if found is not None else "raw"


def _target_xml(name: str, capacity_bytes: int, fmt: str) -> str:
    volume = ET.Element("volume")
    ET.SubElement(volume, "name").text = name
    ET.SubElement(volume, "capacity", unit="bytes").text = str(capacity_bytes)
    ET.SubElement(volume, "allocation", unit="bytes").text = "0"
    target = ET.SubElement(volume, "target")
    ET.SubElement(target, "format", type=fmt)
    return ET.tostring(volume, encoding="unicode")


def copy_volume(
    uri: str,
    source_path: str,
    target_pool: str,
    target_name: str,
    *,
    fmt: str | None = None,
    progress: Progress | None = None,
    cancelled: Callable[[], bool] | None = None,
    poll_seconds: float = 0.5,
) -> str:
    """`qemu-img convert [-O FMT] SOURCE POOL/TARGET` through libvirt; returns the new volume's path.

    `fmt` None keeps the source's format. `progress(done, total)` gets bytes written against the
    source's allocated bytes. When `cancelled()` turns true the copy is stopped and the new volume
    removed, and HypervisorError(code="cancelled") is raised.
    """
    if fmt is not None and fmt not in FORMATS:
        raise HypervisorError(_("Unsupported volume format %(format)r.") % {"format": fmt}, code="invalid-argument")
    validate_name(target_name.rsplit(".", 1)[0])
    conn = connections.get(uri)
    try:
        source = _volume_at(conn, source_path)
        _kind, capacity, allocation = source.info()
        xml_text = _target_xml(target_name, capacity, fmt or _volume_format(source))
        pool = conn.storagePoolLookupByName(target_pool)
        refresh_pool(pool)
        if target_name in pool.listVolumes():
            raise HypervisorError(
                _("Pool %(pool)s already holds a volume named %(name)s.") % {"pool": target_pool, "name": target_name},
                code="exists",
            )
        target_path = str(Path(ET.fromstring(pool.XMLDesc(0)).findtext("./target/path", "")) / target_name)  # noqa: S314
    except libvirt.libvirtError as exc:
        raise translate(exc) from exc

    outcome: dict[str, object] = {}

    def build() -> None:
        try:
            outcome["path"] = pool.createXMLFrom(xml_text, source, 0).path()
        except libvirt.libvirtError as exc:
            outcome["error"] = translate(exc)

    daemon_pid = _local_daemon_pid(uri)
    builder = threading.Thread(target=build, name=f"copy-{target_name}", daemon=True)
    builder.start()
    stopping = False
    reported = 0
    while builder.is_alive():
        builder.join(poll_seconds)
        if not builder.is_alive():
            break  # the copy is over: no report or cancel check can change it now
        if progress is not None:
            written = _written(daemon_pid, target_path, pool, target_name)
            if written is not None and reported <= written < allocation:
                reported = written
                progress(written, allocation)
        if not stopping and cancelled is not None and cancelled():
            stopping = True
            stop_copy(uri, target_path)
    if stopping:
        discard_copy(uri, target_pool, target_name)
        raise HypervisorError(_("The copy was cancelled."), code="cancelled")
    if "error" in outcome:
        raise outcome["error"]
    if progress is not None:
        progress(allocation, allocation)
    return str(outcome["path"])


def refresh_pool(pool: libvirt.virStoragePool) -> None:
    """`virsh pool-refresh`, except while the pool builds a volume: libvirt refuses then ("has
    asynchronous jobs running"), and its volume list is current anyway."""
    try:
        pool.refresh(0)
    except libvirt.libvirtError as exc:
        if "asynchronous jobs" not in (exc.get_error_message() or ""):
            raise


def _volume_at(conn: libvirt.virConnect, path: str) -> libvirt.virStorageVol:
    """The volume at `path`, refreshing the pools once when libvirt has not seen the file yet."""
    try:
        return conn.storageVolLookupByPath(path)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() != libvirt.VIR_ERR_NO_STORAGE_VOL:
            raise
    for pool in conn.listAllStoragePools(libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE):
        refresh_pool(pool)
    return conn.storageVolLookupByPath(path)


def _written(daemon_pid: int | None, path: str, pool: libvirt.virStoragePool, name: str) -> int | None:
    """Bytes the new volume holds so far, or None when unknown. A local daemon's file is looked at
    through its own root; otherwise libvirt's allocation is asked, which is live for qemu-img copies
    (libvirt's own raw-to-raw copy reports the final size from the start: skipped as unknown)."""
    if daemon_pid is not None:
        try:
            return os.stat(f"/proc/{daemon_pid}/root{path}").st_blocks * 512
        except OSError:
            return None
    try:
        return pool.storageVolLookupByName(name).info()[2]
    except libvirt.libvirtError:
        return None


def discard_copy(uri: str, pool_name: str, volume_name: str, *, wait_seconds: float = 3600) -> None:
    """Make sure a copy's target is gone: stop a running copy if possible, wait for its build to end
    (libvirt refuses to delete a volume it is still building), then delete whatever is left."""

    def attempt(conn: libvirt.virConnect) -> bool:
        pool = conn.storagePoolLookupByName(pool_name)
        refresh_pool(pool)
        try:
            volume = pool.storageVolLookupByName(volume_name)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_VOL:
                return True
            raise
        try:
            volume.delete(0)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() != libvirt.VIR_ERR_OPERATION_INVALID:  # "still being allocated"
                raise
            stop_copy(uri, volume.path())
            return False
        return True

    deadline = time.monotonic() + wait_seconds
    while not call(uri, attempt):
        if time.monotonic() > deadline:
            raise HypervisorError(_("The volume %(name)s is still being written.") % {"name": volume_name})
        time.sleep(0.5)


def stop_copy(uri: str, target_path: str) -> bool:
    """Stop the `qemu-img` writing `target_path` for a daemon on this machine; False when there is
    none (finished already, or the host is remote: then the copy runs to its end)."""
    daemon_pid = _local_daemon_pid(uri)
    if daemon_pid is None:
        return False
    try:
        namespace = os.readlink(f"/proc/{daemon_pid}/ns/mnt")
    except OSError:
        return False
    stopped = False
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if not argv or not argv[0].endswith(QEMU_IMG.encode()) or target_path.encode() not in argv:
                continue
            if os.readlink(entry / "ns" / "mnt") != namespace:
                continue
            os.kill(int(entry.name), signal.SIGTERM)
            stopped = True
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return stopped


def _local_daemon_pid(uri: str) -> int | None:
    """The pid of the libvirt (storage) daemon behind a local socket URI, from SO_PEERCRED; None for
    a remote host or a daemon this process cannot see."""
    parsed = urlparse(uri)
    if parsed.hostname or parsed.scheme not in {"qemu", "qemu+unix"}:
        return None
    socket_paths = parse_qs(parsed.query).get("socket") or list(LOCAL_SOCKETS)
    for path in socket_paths:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
                client.settimeout(2)
                client.connect(path)
                credentials = client.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            pid = struct.unpack("3i", credentials)[0]
            return pid if pid > 0 and os.path.exists(f"/proc/{pid}/root") else None
        except OSError:
            continue
    return None
