"""One pooled, kept-alive libvirt connection per host URI, with reconnect and backoff.

libvirt connections are thread-safe, so one per URI per process is enough. Keepalive needs a
running event loop, which `ensure_event_loop()` starts once per process in a daemon thread; the same
loop delivers domain events (kvmpanel/virt/events.py).

When a host cannot be reached the pool remembers the failure and refuses further attempts until a
backoff (1 s, 2 s, 4 s ... up to KVMPANEL_RECONNECT_MAX_SECONDS) has passed, so a dead host costs one
failed connect per backoff period rather than one per request.
"""

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import libvirt
from django.utils.translation import gettext as _

from kvmpanel.virt.errors import HypervisorError

log = logging.getLogger(__name__)
T = TypeVar("T")

_event_loop_lock = threading.Lock()
_event_loop_started = False


def ensure_event_loop() -> None:
    """Register libvirt's default event implementation and run it in a daemon thread (once)."""
    global _event_loop_started
    with _event_loop_lock:
        if _event_loop_started:
            return
        libvirt.virEventRegisterDefaultImpl()

        def run() -> None:
            while True:
                libvirt.virEventRunDefaultImpl()

        threading.Thread(target=run, name="libvirt-events", daemon=True).start()
        _event_loop_started = True


# Silence libvirt's default handler, which prints every error to stderr; we raise instead.
libvirt.registerErrorHandler(lambda _ctx, _err: None, None)


class _CallCounter(threading.local):
    count = 0


_calls = _CallCounter()


def hypervisor_calls() -> int:
    """How many times this thread asked the pool for a connection (one per virt operation)."""
    return _calls.count


@contextlib.contextmanager
def count_hypervisor_calls() -> Iterator["_CountResult"]:
    result = _CountResult()
    start = _calls.count
    try:
        yield result
    finally:
        result.count = _calls.count - start


@dataclass
class _CountResult:
    count: int = 0


@dataclass
class _Failure:
    attempts: int
    retry_at: float
    message: str


class ConnectionPool:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._connections: dict[str, libvirt.virConnect] = {}
        self._failures: dict[str, _Failure] = {}
        self.keepalive_interval = 5
        self.keepalive_count = 3
        self.max_backoff = 30.0

    def configure(self, *, keepalive_interval: int, keepalive_count: int, max_backoff: float) -> None:
        self.keepalive_interval = keepalive_interval
        self.keepalive_count = keepalive_count
        self.max_backoff = max_backoff

    def get(self, uri: str) -> libvirt.virConnect:
        """The live connection to `uri`, opening it if needed; HypervisorError if unreachable."""
        _calls.count += 1
        with self._lock:
            conn = self._connections.get(uri)
            if conn is not None:
                try:
                    if conn.isAlive():
                        return conn
                except libvirt.libvirtError:
                    pass
                self._forget(uri)
            failure = self._failures.get(uri)
            if failure and time.monotonic() < failure.retry_at:
                wait = failure.retry_at - time.monotonic()
                raise HypervisorError(
                    _("%(reason)s (next attempt in %(seconds)d s).")
                    % {"reason": failure.message, "seconds": round(wait)},
                    permanent=False,
                    code="unreachable",
                )
            return self._open(uri)

    def _open(self, uri: str) -> libvirt.virConnect:
        if not uri.startswith("test:"):
            ensure_event_loop()
        try:
            conn = libvirt.open(uri)
        except libvirt.libvirtError as exc:
            message = _clean_message(exc)
            previous = self._failures.get(uri)
            attempts = previous.attempts + 1 if previous else 1
            backoff = min(self.max_backoff, 2.0 ** (attempts - 1))
            self._failures[uri] = _Failure(attempts, time.monotonic() + backoff, message)
            log.warning("cannot connect to %s: %s (retry in %.0f s)", uri, message, backoff)
            raise HypervisorError(message, permanent=False, code="unreachable") from exc
        self._failures.pop(uri, None)
        if not uri.startswith("test:"):
            with contextlib.suppress(libvirt.libvirtError):
                conn.setKeepAlive(self.keepalive_interval, self.keepalive_count)
            with contextlib.suppress(libvirt.libvirtError):
                conn.registerCloseCallback(self._on_close, uri)
        self._connections[uri] = conn
        log.info("connected to %s", uri)
        return conn

    def _on_close(self, _conn: libvirt.virConnect, reason: int, uri: str) -> None:
        log.warning("connection to %s closed (reason %s)", uri, reason)
        with self._lock:
            if self._connections.get(uri) is _conn:
                self._connections.pop(uri, None)

    def _forget(self, uri: str) -> None:
        conn = self._connections.pop(uri, None)
        if conn is not None:
            with contextlib.suppress(libvirt.libvirtError):
                conn.unregisterCloseCallback()
            with contextlib.suppress(libvirt.libvirtError):
                conn.close()

    def drop(self, uri: str) -> None:
        """Close and forget the connection to `uri` (and its failure record)."""
        with self._lock:
            self._forget(uri)
            self._failures.pop(uri, None)

    def close_all(self) -> None:
        with self._lock:
            for uri in list(self._connections):
                self._forget(uri)
            self._failures.clear()

    def get_cached(self, uri: str) -> "libvirt.virConnect | None":
        with self._lock:
            return self._connections.get(uri)

    def is_connected(self, uri: str) -> bool:
        with self._lock:
            conn = self._connections.get(uri)
            try:
                return bool(conn is not None and conn.isAlive())
            except libvirt.libvirtError:
                return False


pool = ConnectionPool()


def _clean_message(exc: libvirt.libvirtError) -> str:
    message = exc.get_error_message() or str(exc)
    return message.strip()


_ERROR_CODES = {
    libvirt.VIR_ERR_NO_DOMAIN: "no-domain",
    libvirt.VIR_ERR_OPERATION_INVALID: "invalid-state",
    libvirt.VIR_ERR_XML_ERROR: "invalid-xml",
    libvirt.VIR_ERR_XML_DETAIL: "invalid-xml",
    libvirt.VIR_ERR_XML_INVALID_SCHEMA: "invalid-xml",
    libvirt.VIR_ERR_CONFIG_UNSUPPORTED: "unsupported",
    libvirt.VIR_ERR_NO_SUPPORT: "unsupported",
    libvirt.VIR_ERR_OPERATION_UNSUPPORTED: "unsupported",
    libvirt.VIR_ERR_OPERATION_TIMEOUT: "timeout",
    libvirt.VIR_ERR_AGENT_UNRESPONSIVE: "agent-unresponsive",
    libvirt.VIR_ERR_SYSTEM_ERROR: "system",
    libvirt.VIR_ERR_NO_STORAGE_VOL: "no-volume",
    libvirt.VIR_ERR_NO_STORAGE_POOL: "no-pool",
    libvirt.VIR_ERR_OPERATION_FAILED: "failed",
    libvirt.VIR_ERR_INVALID_ARG: "invalid-argument",
}
_TRANSIENT = {libvirt.VIR_ERR_NO_CONNECT, libvirt.VIR_ERR_INTERNAL_ERROR, libvirt.VIR_ERR_RPC}


def translate(exc: libvirt.libvirtError) -> HypervisorError:
    code_number = exc.get_error_code()
    message = _clean_message(exc)
    if code_number in _TRANSIENT and ("connection" in message.lower() or "closed" in message.lower()):
        return HypervisorError(message, permanent=False, code="unreachable")
    return HypervisorError(message, permanent=True, code=_ERROR_CODES.get(code_number, "error"))


def call(uri: str, operation: Callable[[libvirt.virConnect], T]) -> T:
    """Run `operation(connection)` on the host, turning libvirt errors into HypervisorError.

    A failure that looks like a dropped connection makes the pool forget the connection, so the
    next call reconnects instead of reusing a dead one.
    """
    conn = pool.get(uri)
    try:
        return operation(conn)
    except libvirt.libvirtError as exc:
        error = translate(exc)
        if not error.permanent:
            pool.drop(uri)
        raise error from exc
