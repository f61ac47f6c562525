"""A domain's serial console as a non-blocking libvirt stream (virsh console, virsh §5.1).

`open_serial` opens the console with virDomainOpenConsole in safe mode and without FORCE, so a
console that another session holds is refused rather than taken over: one stream per user session,
never a shared pty. Data from the guest is delivered to `on_data` on the libvirt event-loop thread
(kvmpanel/virt/connection.py), and `on_close` is called once when the stream ends by itself (the VM
stopped, the connection dropped). Those callbacks must not block or touch the database: hand the
bytes on to another thread or an asyncio loop (`loop.call_soon_threadsafe`).

Callers get a `SerialConsole` with `write` and `close`, never the virStream itself.
"""

import contextlib
import logging
import threading
from collections.abc import Callable

import libvirt
from django.utils.translation import gettext as _

from kvmpanel.virt.connection import call, ensure_event_loop
from kvmpanel.virt.domain import _lookup
from kvmpanel.virt.errors import HypervisorError

log = logging.getLogger(__name__)

CHUNK_BYTES = 64 * 1024
MAX_PENDING_BYTES = 1 << 20  # input the guest has not taken yet; more means it stopped reading
_MAX_READS_PER_EVENT = 16  # do not starve the event loop when the guest floods the console
_BASE_EVENTS = libvirt.VIR_STREAM_EVENT_READABLE | libvirt.VIR_STREAM_EVENT_HANGUP | libvirt.VIR_STREAM_EVENT_ERROR
_EAGAIN = -2


class SerialConsole:
    """An open serial console. `write` may be called from any thread; `close` is idempotent."""

    def __init__(self, stream: libvirt.virStream, on_data: Callable[[bytes], None], on_close: Callable[[str], None]):
        self._stream = stream
        self._on_data = on_data
        self._on_close = on_close
        self._lock = threading.RLock()
        self._pending = bytearray()
        self._events = _BASE_EVENTS
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def _watch(self) -> None:
        self._stream.eventAddCallback(self._events, self._on_event, None)

    def write(self, data: bytes) -> None:
        """Send input to the guest. What the stream cannot take now is kept and sent when it becomes
        writable; HypervisorError when the console is closed or the guest stopped reading."""
        if not data:
            return
        with self._lock:
            if self._closed:
                raise HypervisorError(_("The serial console is closed."), code="console-closed")
            if len(self._pending) + len(data) > MAX_PENDING_BYTES:
                raise HypervisorError(_("The VM is not reading its serial console."), code="console-stalled")
            self._pending += data
            error = self._flush()
        if error:
            self._end(error)
            raise HypervisorError(error, code="console-closed")

    def close(self) -> None:
        """Stop the callbacks and release the console (another session may then open it)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._release()

    # ---- on the libvirt event-loop thread ----

    def _on_event(self, _stream: libvirt.virStream, events: int, _opaque: object) -> None:
        if self._closed:
            return
        ended = ""
        if events & (libvirt.VIR_STREAM_EVENT_READABLE | libvirt.VIR_STREAM_EVENT_HANGUP):
            ended = self._read()
        if not ended and events & libvirt.VIR_STREAM_EVENT_WRITABLE:
            with self._lock:
                ended = "" if self._closed else self._flush()
        if not ended and events & libvirt.VIR_STREAM_EVENT_ERROR:
            ended = "console stream error"
        if not ended and events & libvirt.VIR_STREAM_EVENT_HANGUP:
            ended = "console hung up"
        if ended:
            self._end(ended)

    def _read(self) -> str:
        """Deliver what the guest wrote; the reason the console ended, or "" while it is open."""
        for _attempt in range(_MAX_READS_PER_EVENT):
            with self._lock:
                if self._closed:
                    return ""
                try:
                    data = self._stream.recv(CHUNK_BYTES)
                except libvirt.libvirtError as exc:
                    return f"console stream error: {exc.get_error_message() or exc}"
            if data == _EAGAIN:
                return ""
            if not data:
                return "console closed by the hypervisor"
            try:
                self._on_data(bytes(data))
            except Exception:  # a failing consumer must not kill the libvirt event loop
                log.exception("serial console data handler failed")
        return ""

    def _flush(self) -> str:
        """Send pending input (lock held); "" or why the stream failed."""
        try:
            while self._pending:
                sent = self._stream.send(bytes(self._pending[:CHUNK_BYTES]))
                if sent == _EAGAIN:
                    break
                del self._pending[:sent]
            wanted = _BASE_EVENTS | (libvirt.VIR_STREAM_EVENT_WRITABLE if self._pending else 0)
            if wanted != self._events:
                self._stream.eventUpdateCallback(wanted)
                self._events = wanted
        except libvirt.libvirtError as exc:
            return f"console stream error: {exc.get_error_message() or exc}"
        return ""

    def _end(self, reason: str) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._release(graceful=False)
        try:
            self._on_close(reason)
        except Exception:
            log.exception("serial console close handler failed")

    def _release(self, *, graceful: bool = True) -> None:
        with contextlib.suppress(libvirt.libvirtError):
            self._stream.eventRemoveCallback()
        if graceful:
            try:
                self._stream.finish()
                return
            except libvirt.libvirtError:
                pass
        with contextlib.suppress(libvirt.libvirtError):
            self._stream.abort()


def _console_error(exc: libvirt.libvirtError) -> HypervisorError | None:
    message = (exc.get_error_message() or "").lower()
    if "active console session" in message or "console is already in use" in message:
        return HypervisorError(_("Another session is using this VM's serial console."), code="console-busy")
    if exc.get_error_code() == libvirt.VIR_ERR_OPERATION_INVALID and "not running" in message:
        return HypervisorError(_("The VM is not running, so it has no console."), code="invalid-state")
    if "cannot find character device" in message:
        return HypervisorError(_("The VM has no serial console."), code="no-serial")
    return None


def open_serial(
    uri: str,
    uuid: str,
    *,
    on_data: Callable[[bytes], None],
    on_close: Callable[[str], None],
) -> SerialConsole:
    """Open the domain's first serial console (what `virsh console` attaches to)."""
    if not uri.startswith("test:"):
        ensure_event_loop()  # the stream's callbacks run on it

    def run(conn: libvirt.virConnect) -> SerialConsole:
        dom = _lookup(conn, uuid)
        stream = conn.newStream(libvirt.VIR_STREAM_NONBLOCK)
        try:
            dom.openConsole(None, stream, libvirt.VIR_DOMAIN_CONSOLE_SAFE)
        except libvirt.libvirtError as exc:
            with contextlib.suppress(libvirt.libvirtError):
                stream.abort()
            known = _console_error(exc)
            if known is not None:
                raise known from exc
            raise
        console = SerialConsole(stream, on_data, on_close)
        try:
            console._watch()
        except libvirt.libvirtError:
            with contextlib.suppress(libvirt.libvirtError):
                stream.abort()
            raise
        return console

    return call(uri, run)
