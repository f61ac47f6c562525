"""Storage pools and volumes, through libvirt's storage API so remote hosts need no agent.

Pools: list (with their volumes), define + build + start a directory pool, start, stop, autostart,
refresh, delete (empty only). Volumes: create (sparse raw or qcow2, like `qemu-img create`), grow,
delete, write a part at an offset (uploads) and read back (downloads) through `virStream`, sparse
where the host supports it (holes travel as hole markers instead of zeros). Everything returns the
frozen dataclasses below and raises HypervisorError; names, paths and sizes are validated by the
caller (apps/storage/validators.py, services.py) before they get here.
"""

import contextlib
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import libvirt
from django.utils.translation import gettext as _

from kvmpanel.virt.connection import call, translate
from kvmpanel.virt.errors import HypervisorError
from kvmpanel.virt.xml import validate_name

STREAM_CHUNK_BYTES = 1 << 20
_ZERO_CHUNK = bytes(STREAM_CHUNK_BYTES)
# virStreamRecvFlags returns this (not bytes) when VIR_STREAM_RECV_STOP_AT_HOLE stops at a hole.
_AT_HOLE = -3
# Errors that mean "the host cannot do this flag/call": fall back to the plain (non-sparse) way.
_UNSUPPORTED = {libvirt.VIR_ERR_NO_SUPPORT, libvirt.VIR_ERR_INVALID_ARG, libvirt.VIR_ERR_OPERATION_UNSUPPORTED}


@dataclass(frozen=True)
class VolumeInfo:
    name: str
    path: str
    type: str  # "file", "dir", "block", ...
    format: str  # "qcow2", "raw", "iso", ... ("" when the host does not say)
    capacity_bytes: int  # the virtual size a guest sees
    allocation_bytes: int  # what it really occupies on the host (far below capacity when sparse)
    physical_bytes: int  # the file's length on the host (what a download sends)
    backing_path: str = ""  # a qcow2 backing file, if any


@dataclass(frozen=True)
class PoolInfo:
    name: str
    uuid: str
    type: str
    path: str
    active: bool
    autostart: bool
    persistent: bool
    capacity_bytes: int
    allocation_bytes: int
    available_bytes: int
    volumes: tuple[VolumeInfo, ...] = ()


def _int(element: ET.Element, tag: str) -> int:
    text = element.findtext(tag)
    return int(text) if text and text.strip().isdigit() else 0


def _volume_info(volume: libvirt.virStorageVol) -> VolumeInfo:
    root = ET.fromstring(volume.XMLDesc(0))  # noqa: S314 - libvirt's own XML
    target_format = root.find("./target/format")
    return VolumeInfo(
        name=root.findtext("name", "") or volume.name(),
        path=root.findtext("./target/path", "") or volume.path(),
        type=root.get("type", "file"),
        format=target_format.get("type", "") if target_format is not None else "",
        capacity_bytes=_int(root, "capacity"),
        allocation_bytes=_int(root, "allocation"),
        physical_bytes=_int(root, "physical") or _int(root, "capacity"),
        backing_path=root.findtext("./backingStore/path", ""),
    )


def _volumes(pool: libvirt.virStoragePool) -> tuple[VolumeInfo, ...]:
    volumes = []
    for volume in pool.listAllVolumes(0):
        try:
            volumes.append(_volume_info(volume))
        except libvirt.libvirtError as exc:
            if exc.get_error_code() != libvirt.VIR_ERR_NO_STORAGE_VOL:  # deleted between list and read
                raise
    return tuple(sorted(volumes, key=lambda v: v.name))


def _pool_info(pool: libvirt.virStoragePool, *, with_volumes: bool) -> PoolInfo:
    root = ET.fromstring(pool.XMLDesc(0))  # noqa: S314 - libvirt's own XML
    active = bool(pool.isActive())
    capacity = allocation = available = 0
    if active:
        _state, capacity, allocation, available = pool.info()
    return PoolInfo(
        name=pool.name(),
        uuid=root.findtext("uuid", ""),
        type=root.get("type", ""),
        path=root.findtext("./target/path", ""),
        active=active,
        autostart=bool(pool.autostart()),
        persistent=bool(pool.isPersistent()),
        capacity_bytes=capacity,
        allocation_bytes=allocation,
        available_bytes=available,
        volumes=_volumes(pool) if active and with_volumes else (),
    )


def list_pools(uri: str, *, with_volumes: bool = True, names: Iterable[str] | None = None) -> tuple[PoolInfo, ...]:
    """`virsh pool-list --all --details` (and `vol-list --details` of each active pool).

    `names` limits the answer to those pools (a missing one is simply absent from the result).
    """
    wanted = set(names) if names is not None else None

    def run(conn: libvirt.virConnect) -> tuple[PoolInfo, ...]:
        pools = []
        for pool in conn.listAllStoragePools(0):
            if wanted is not None and pool.name() not in wanted:
                continue
            try:
                pools.append(_pool_info(pool, with_volumes=with_volumes))
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_NO_STORAGE_POOL:  # undefined meanwhile
                    raise
        return tuple(sorted(pools, key=lambda p: p.name))

    return call(uri, run)


def pool_info(uri: str, name: str, *, with_volumes: bool = False) -> PoolInfo:
    """One pool (`virsh pool-info NAME`); HypervisorError(code="no-pool") when it does not exist."""
    return call(uri, lambda conn: _pool_info(conn.storagePoolLookupByName(name), with_volumes=with_volumes))


def supported_pool_types(uri: str) -> tuple[str, ...]:
    """The pool types this host's libvirt can manage (`virsh pool-capabilities`), or () when the
    host is too old to say (libvirt < 5.2) or the driver has no such call (the test driver)."""

    def run(conn: libvirt.virConnect) -> tuple[str, ...]:
        try:
            root = ET.fromstring(conn.getStoragePoolCapabilities(0))  # noqa: S314 - libvirt's own XML
        except libvirt.libvirtError as exc:
            if exc.get_error_code() in _UNSUPPORTED:
                return ()
            raise
        return tuple(
            sorted(p.get("type", "") for p in root.iterfind("pool") if p.get("supported") == "yes" and p.get("type"))
        )

    return call(uri, run)


def _dir_pool_xml(name: str, path: str) -> str:
    pool_element = ET.Element("pool", type="dir")
    ET.SubElement(pool_element, "name").text = name
    target = ET.SubElement(pool_element, "target")
    ET.SubElement(target, "path").text = path
    return ET.tostring(pool_element, encoding="unicode")


def create_dir_pool(uri: str, name: str, path: str, *, autostart: bool = True) -> PoolInfo:
    """`virsh pool-define-as NAME dir --target PATH; pool-build; pool-start; pool-autostart`.

    All or nothing: when a later step fails, the steps before it are undone (the directory is
    removed again only if the build made it and it is still empty), so a failure leaves no
    half-made pool behind.
    """
    xml_text = _dir_pool_xml(name, path)

    def run(conn: libvirt.virConnect) -> PoolInfo:
        pool = conn.storagePoolDefineXML(xml_text, 0)
        started = False
        try:
            pool.build(0)  # mkdir -p; an existing directory is kept as it is (mode and owner untouched)
            pool.create(0)
            started = True
            if autostart:
                pool.setAutostart(1)
            return _pool_info(pool, with_volumes=True)
        except BaseException:
            with contextlib.suppress(libvirt.libvirtError):
                if started:
                    pool.destroy()
            with contextlib.suppress(libvirt.libvirtError):
                pool.undefine()
            raise

    return call(uri, run)


def ensure_dir_pool(uri: str, name: str, path: str) -> str:
    """The name of an active pool over directory `path`: an existing one (a host refuses two pools
    on one directory), else a new one, like `virsh pool-define-as NAME dir --target PATH; pool-start`."""
    xml_text = _dir_pool_xml(name, path)

    def run(conn: libvirt.virConnect) -> str:
        for pool in conn.listAllStoragePools(0):
            root = ET.fromstring(pool.XMLDesc(0))  # noqa: S314 - libvirt's own XML
            if root.findtext("./target/path", "").rstrip("/") == path.rstrip("/"):
                break
        else:
            pool = conn.storagePoolDefineXML(xml_text, 0)
        if not pool.isActive():
            pool.create(0)
        return pool.name()

    return call(uri, run)


def start_pool(uri: str, name: str) -> None:
    """`virsh pool-start NAME`."""
    call(uri, lambda conn: conn.storagePoolLookupByName(name).create(0))


def stop_pool(uri: str, name: str) -> None:
    """`virsh pool-destroy NAME`: the pool goes inactive; its files stay where they are."""
    call(uri, lambda conn: conn.storagePoolLookupByName(name).destroy())


def set_pool_autostart(uri: str, name: str, enabled: bool) -> None:
    """`virsh pool-autostart [--disable] NAME`."""
    call(uri, lambda conn: conn.storagePoolLookupByName(name).setAutostart(1 if enabled else 0))


def refresh_pool(uri: str, name: str) -> None:
    """`virsh pool-refresh NAME`: rescan the pool so files made outside libvirt show up."""
    call(uri, lambda conn: conn.storagePoolLookupByName(name).refresh(0))


def delete_pool(uri: str, name: str) -> None:
    """`virsh pool-destroy NAME; pool-delete NAME; pool-undefine NAME`, for an empty pool only.

    An inactive pool is started first so its contents can be checked (a pool whose directory is
    gone cannot start: then only its definition is removed). A pool holding any volume is refused
    with code "not-empty" and left as it was. The directory is removed with rmdir, which itself
    refuses a non-empty directory, so a file appearing meanwhile is never lost.
    """

    def run(conn: libvirt.virConnect) -> None:
        pool = conn.storagePoolLookupByName(name)
        was_active = bool(pool.isActive())
        if not was_active:
            try:
                pool.create(0)
            except libvirt.libvirtError:
                if pool.isPersistent():
                    pool.undefine()
                return
        pool.refresh(0)
        count = pool.numOfVolumes()
        if count:
            if not was_active:
                pool.destroy()
            raise HypervisorError(
                _("Pool %(pool)s is not empty: it holds %(count)d volume(s). Delete them first.")
                % {"pool": name, "count": count},
                code="not-empty",
            )
        pool.destroy()
        try:
            pool.delete(libvirt.VIR_STORAGE_POOL_DELETE_NORMAL)
        except libvirt.libvirtError:
            if was_active:
                with contextlib.suppress(libvirt.libvirtError):
                    pool.create(0)
            raise
        if pool.isPersistent():
            pool.undefine()

    call(uri, run)


def _volume_xml(volume_name: str, capacity_bytes: int, fmt: str) -> str:
    volume = ET.Element("volume")
    ET.SubElement(volume, "name").text = volume_name
    ET.SubElement(volume, "allocation").text = "0"
    ET.SubElement(volume, "capacity", unit="bytes").text = str(capacity_bytes)
    target = ET.SubElement(volume, "target")
    ET.SubElement(target, "format", type=fmt)
    return ET.tostring(volume, encoding="unicode")


def create_volume(uri: str, pool_name: str, volume_name: str, *, capacity_bytes: int, fmt: str = "qcow2") -> str:
    """`qemu-img create -f FMT` inside a pool (sparse): returns the new volume's path."""
    if fmt not in {"qcow2", "raw"}:
        raise HypervisorError(_("Unsupported volume format %(format)r.") % {"format": fmt}, code="invalid-argument")
    validate_name(volume_name.rsplit(".", 1)[0])
    xml_text = _volume_xml(volume_name, capacity_bytes, fmt)

    def run(conn: libvirt.virConnect) -> str:
        pool = conn.storagePoolLookupByName(pool_name)
        return pool.createXML(xml_text, 0).path()

    return call(uri, run)


def find_volume_in_pool(uri: str, pool_name: str, file_name: str) -> str | None:
    """The path of `file_name` in a pool, refreshing the pool first so new files are seen."""

    def run(conn: libvirt.virConnect) -> str | None:
        pool = conn.storagePoolLookupByName(pool_name)
        pool.refresh(0)
        try:
            return pool.storageVolLookupByName(file_name).path()
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_VOL:
                return None
            raise

    return call(uri, run)


def volume_info(uri: str, pool_name: str, volume_name: str) -> VolumeInfo | None:
    """One volume as the host sees it now (`virsh vol-info --pool POOL NAME`), or None if absent.

    The pool is refreshed first when it can be (a refresh is refused while the pool has an upload
    or another asynchronous job running; then the volumes libvirt already knows are used).
    """

    def run(conn: libvirt.virConnect) -> VolumeInfo | None:
        pool = conn.storagePoolLookupByName(pool_name)
        with contextlib.suppress(libvirt.libvirtError):
            pool.refresh(0)
        try:
            return _volume_info(pool.storageVolLookupByName(volume_name))
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_VOL:
                return None
            raise

    return call(uri, run)


def resize_volume(uri: str, pool_name: str, volume_name: str, capacity_bytes: int) -> VolumeInfo:
    """`virsh vol-resize --pool POOL NAME SIZE`, growing only (a raw file grows sparse, a qcow2 is
    resized by `qemu-img resize`); a size at or below the current one is refused (code "shrink")."""

    def run(conn: libvirt.virConnect) -> VolumeInfo:
        volume = conn.storagePoolLookupByName(pool_name).storageVolLookupByName(volume_name)
        _kind, current, _allocation = volume.info()
        if capacity_bytes <= current:
            raise HypervisorError(
                _("Volumes only grow: %(name)s is already %(current)d bytes.")
                % {"name": volume_name, "current": current},
                code="shrink",
            )
        volume.resize(capacity_bytes, 0)
        return _volume_info(volume)

    return call(uri, run)


def delete_volume(uri: str, pool_name: str, volume_name: str) -> None:
    """`virsh vol-delete VOLUME --pool POOL`."""
    call(uri, lambda conn: conn.storagePoolLookupByName(pool_name).storageVolLookupByName(volume_name).delete(0))


def _send_all(stream: libvirt.virStream, data: bytes) -> None:
    while data:  # a blocking stream normally takes it all at once
        data = data[stream.send(data) :]


def write_volume_part(
    uri: str,
    pool_name: str,
    volume_name: str,
    chunks: Iterable[bytes],
    *,
    offset: int,
    length: int,
) -> None:
    """Write `length` bytes from `chunks` into an existing volume at `offset`, like
    `virsh vol-upload --sparse --offset OFFSET --length LENGTH --pool POOL NAME FILE`.

    The data travels through a libvirt stream (so a remote host needs no agent) a chunk at a time;
    all-zero chunks are sent as holes when the host supports sparse streams, so the volume stays
    sparse. Chunks adding up to more or less than `length` abort the stream (HypervisorError,
    code "invalid-argument"); what was already written at this offset may stay, so a caller
    that gives up deletes the volume.
    """

    def run(conn: libvirt.virConnect) -> None:
        volume = conn.storagePoolLookupByName(pool_name).storageVolLookupByName(volume_name)
        stream = conn.newStream(0)
        sparse = True
        try:
            volume.upload(stream, offset, length, libvirt.VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() not in _UNSUPPORTED:
                raise
            sparse = False
            stream = conn.newStream(0)
            volume.upload(stream, offset, length, 0)
        try:
            _send_chunks(stream, chunks, length, sparse=sparse)
            stream.finish()
        except BaseException:
            with contextlib.suppress(libvirt.libvirtError):
                stream.abort()
            raise

    call(uri, run)


def _is_zero(chunk: bytes) -> bool:
    return chunk == _ZERO_CHUNK if len(chunk) == STREAM_CHUNK_BYTES else not chunk.strip(b"\0")


def _send_chunks(stream: libvirt.virStream, chunks: Iterable[bytes], length: int, *, sparse: bool) -> None:
    sent = 0
    for chunk in chunks:
        if not chunk:
            continue
        if sent + len(chunk) > length:
            raise HypervisorError(
                _("The data is longer than the %(length)d bytes announced.") % {"length": length},
                code="invalid-argument",
            )
        if sparse and _is_zero(chunk):
            stream.sendHole(len(chunk), 0)
        else:
            _send_all(stream, chunk)
        sent += len(chunk)
    if sent != length:
        raise HypervisorError(
            _("The data ended after %(sent)d of the %(length)d bytes announced.") % {"sent": sent, "length": length},
            code="invalid-argument",
        )


class VolumeDownload:
    """An open `virsh vol-download --sparse` stream: `length` bytes, read with `chunks()`.

    Holes arrive as hole markers and are handed out as zeros (an HTTP body has no holes), so a
    sparse remote volume does not cross the libvirt connection as zeros. Always `close()` it
    (or exhaust `chunks()`): an unfinished stream is aborted there.
    """

    def __init__(self, stream: libvirt.virStream, *, name: str, length: int, sparse: bool) -> None:
        self._stream = stream
        self._finished = False
        self.name = name
        self.length = length
        self.sparse = sparse

    def chunks(self) -> Iterator[bytes]:
        try:
            while True:
                if self.sparse:
                    data = self._stream.recvFlags(STREAM_CHUNK_BYTES, libvirt.VIR_STREAM_RECV_STOP_AT_HOLE)
                else:
                    data = self._stream.recv(STREAM_CHUNK_BYTES)
                if data == _AT_HOLE:
                    hole = self._stream.recvHole(0)
                    while hole > 0:
                        piece = min(hole, STREAM_CHUNK_BYTES)
                        yield _ZERO_CHUNK[:piece] if piece != STREAM_CHUNK_BYTES else _ZERO_CHUNK
                        hole -= piece
                    continue
                if not data:
                    self._stream.finish()
                    self._finished = True
                    return
                yield data
        except libvirt.libvirtError as exc:
            raise translate(exc) from exc
        finally:
            self.close()

    def close(self) -> None:
        if not self._finished:
            self._finished = True
            with contextlib.suppress(libvirt.libvirtError):
                self._stream.abort()


def open_download(uri: str, pool_name: str, volume_name: str) -> VolumeDownload:
    """Start `virsh vol-download --sparse --pool POOL NAME FILE`: the whole file as the host stores
    it (a qcow2 downloads as qcow2), `length` being its physical size."""

    def run(conn: libvirt.virConnect) -> VolumeDownload:
        volume = conn.storagePoolLookupByName(pool_name).storageVolLookupByName(volume_name)
        length = _volume_info(volume).physical_bytes
        stream = conn.newStream(0)
        try:
            volume.download(stream, 0, 0, libvirt.VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM)
            sparse = True
        except libvirt.libvirtError as exc:
            if exc.get_error_code() not in _UNSUPPORTED:
                raise
            stream = conn.newStream(0)
            volume.download(stream, 0, 0, 0)
            sparse = False
        return VolumeDownload(stream, name=volume_name, length=length, sparse=sparse)

    return call(uri, run)
