"""The console proxy: websockify's WebSocketProxy with kvmpanel's ticket check in front.

One process per connection (websockify forks), so every connection has its own database and
Redis clients and its own libvirt connection. A connection is accepted only after, in order:
the Origin is one of the panel's, the ticket in Sec-WebSocket-Protocol redeems (once), the
browser's session (when it sends one) is the ticket holder's, and the endpoint the hypervisor
reports now is the one the ticket was issued for. The client never names the target.

While open, a watchdog re-checks the grant every KVMPANEL_CONSOLE_RECHECK_SECONDS and closes the
console when the user is disabled, loses the privilege, or the VM is deleted or moves; it also
enforces the idle timeout. Tickets never reach a log line: they are not in the URL, and every
message this module logs is written without the request path or headers.
"""

import contextlib
import ipaddress
import logging
import socket
import struct
import threading
import time
import uuid
from http.cookies import SimpleCookie
from urllib.parse import urlsplit

from django.conf import settings
from django.db import close_old_connections, connection
from websockify import websocketproxy
from websockify.websockifyserver import CompatibleWebSocket

from apps.console import services, store
from apps.console.choices import ConsoleKind
from apps.console.rfb import ViewOnlyFilter
from apps.core.http import forwarded_client

log = logging.getLogger("kvmpanel.console")
RFB_UPDATE_REQUEST = 3  # client->server FramebufferUpdateRequest: noVNC's polling, not user activity
WS_MESSAGE_TOO_BIG = 1009
WS_POLICY_VIOLATION = 1008


def _declared_length(frame_start: bytes) -> int:
    """The payload length a WebSocket frame header announces (0 until enough header has arrived)."""
    if len(frame_start) < 2:
        return 0
    length = frame_start[1] & 0x7F
    if length == 126:
        return struct.unpack(">H", frame_start[2:4])[0] if len(frame_start) >= 4 else 0
    if length == 127:
        return struct.unpack(">Q", frame_start[2:10])[0] if len(frame_start) >= 10 else 0
    return length


class BoundedWebSocket(CompatibleWebSocket):
    """A WebSocket that closes (1009) on a client message over KVMPANEL_CONSOLE_MAX_MESSAGE_BYTES,
    as soon as a frame header announces one, before buffering it."""

    def _recv_frames(self):
        result = super()._recv_frames()
        limit = settings.KVMPANEL_CONSOLE_MAX_MESSAGE_BYTES
        if _declared_length(self._recv_buffer) > limit or len(self._partial_msg) > limit:
            self._recv_buffer = b""
            self._partial_msg = b""
            self.shutdown(socket.SHUT_RDWR, WS_MESSAGE_TOO_BIG, "Message too big")
        return result


class MeteredSocket:
    """The target socket, counting bytes and noting when the user last did something."""

    def __init__(self, sock: socket.socket, *, view_only: bool = False) -> None:
        self.sock = sock
        self.view_only = ViewOnlyFilter() if view_only else None
        self.bytes_to_target = 0
        self.bytes_from_target = 0
        self.last_input = time.monotonic()

    def fileno(self) -> int:
        return self.sock.fileno()

    def recv(self, size: int) -> bytes:
        data = self.sock.recv(size)
        self.bytes_from_target += len(data)
        return data

    def send(self, data: bytes) -> int:
        if self.view_only is not None:
            # Input never reaches the VM from a view-only console, whatever the client sends.
            self.sock.sendall(self.view_only.feed(data))
            self.bytes_to_target += len(data)
            return len(data)
        sent = self.sock.send(data)
        self.bytes_to_target += sent
        if not (len(data) % 10 == 0 and data[:1] == bytes([RFB_UPDATE_REQUEST])):
            self.last_input = time.monotonic()
        return sent

    def __getattr__(self, name: str):
        return getattr(self.sock, name)


class ConsoleRequestHandler(websocketproxy.ProxyRequestHandler):
    SocketClass = BoundedWebSocket

    def log_message(self, format: str, *args) -> None:
        # websockify logs request paths and "Token '...' not found"; ours never carry a ticket, but
        # nothing from the request line is logged at all, to be sure.
        if "Path" in format or "token" in format.lower():
            return
        log.debug("%s %s", self.client_address[0], format % args)

    def log_request(self, code="-", size="-") -> None:
        return

    def refuse(self, status: int, reason: str) -> None:
        log.info("console refused for %s: %s", self.client_address[0], reason)
        self.send_error(status, "Console refused")
        raise self.server.EClose("")

    def validate_connection(self) -> None:
        close_old_connections()
        origin = self.headers.get("Origin")
        if origin is not None and origin not in settings.KVMPANEL_CONSOLE_ALLOWED_ORIGINS:
            self.refuse(403, "origin not allowed")
        secret = services.ticket_from_protocols(self.headers.get("Sec-WebSocket-Protocol"))
        try:
            self.grant = services.redeem(secret, kind=ConsoleKind.VNC, session_key=self._session_key())
            self.vm, endpoint = services.current_state(self.grant)
            services.check_capacity(self.grant)
        except services.Refused as refused:
            self.refuse(403, str(refused))
        if endpoint.socket:
            self.server.unix_target = endpoint.socket
        else:
            self.server.target_host, self.server.target_port = self._tcp_target(endpoint)

    def _session_key(self) -> str | None:
        cookie = SimpleCookie()
        with contextlib.suppress(Exception):
            cookie.load(self.headers.get("Cookie", ""))
        morsel = cookie.get(settings.SESSION_COOKIE_NAME)
        return morsel.value if morsel else None

    def _tcp_target(self, endpoint) -> tuple[str, int]:
        """VNC on TCP: loopback on a local host, the URI's address (management network) on a TLS host."""
        parts = urlsplit(self.vm.host.uri)
        address = endpoint.address or "127.0.0.1"
        wildcard = address in {"0.0.0.0", "::"}  # noqa: S104 - reading a listen address, not binding one
        if parts.scheme in {"qemu", "qemu+unix"}:
            if wildcard or ipaddress.ip_address(address).is_loopback:
                return "127.0.0.1", endpoint.port
            self.refuse(403, "a local VM's console listens on a non-loopback address")
        if parts.scheme in {"qemu+tls", "qemu+tcp"} and parts.hostname:
            return (parts.hostname if wildcard else address), endpoint.port
        self.refuse(403, f"no console route to {parts.scheme} hosts yet")
        raise AssertionError("unreachable")

    def do_proxy(self, target) -> None:
        metered = MeteredSocket(target, view_only=self.grant.view_only)
        connection_id = uuid.uuid4().hex
        opened = time.monotonic()
        client = forwarded_client(self.client_address[0], self.headers.get("X-Forwarded-For"))
        grant = self.grant
        lifetime = settings.KVMPANEL_CONSOLE_RECHECK_SECONDS * 5
        store.mark_open(connection_id, grant.user_id, grant.vm_id, lifetime)
        self.close_reason = "closed"
        stop = threading.Event()
        watchdog = threading.Thread(target=self._watch, args=(metered, connection_id, client, stop), daemon=True)
        watchdog.start()
        try:
            super().do_proxy(metered)
        finally:
            stop.set()
            watchdog.join(timeout=5)
            close_old_connections()
            store.mark_closed(connection_id, grant.user_id, grant.vm_id)
            services.record_closed(
                grant,
                client,
                seconds=time.monotonic() - opened,
                reason=self.close_reason,
                bytes_in=metered.bytes_to_target,
                bytes_out=metered.bytes_from_target,
            )

    def _watch(self, metered: MeteredSocket, connection_id: str, client: str | None, stop: threading.Event) -> None:
        """Every few seconds: may this console stay open? Closing the target ends the relay loop.

        The "opened" audit event is written here too, so the relay starts without waiting for it.
        """
        interval = settings.KVMPANEL_CONSOLE_RECHECK_SECONDS
        lifetime = interval * 5
        try:
            services.record_opened(self.grant, self.vm, client)
            while not stop.wait(interval):
                reason = services.still_allowed(self.grant)
                if reason is None and time.monotonic() - metered.last_input > settings.KVMPANEL_CONSOLE_IDLE_SECONDS:
                    reason = "idle timeout"
                if reason is not None:
                    self.close_reason = reason
                    log.info("closing console of VM %s: %s", self.grant.vm_id, reason)
                    with contextlib.suppress(OSError):
                        metered.sock.shutdown(socket.SHUT_RDWR)
                    return
                store.mark_open(connection_id, self.grant.user_id, self.grant.vm_id, lifetime)
        finally:
            connection.close()


class ConsoleProxy(websocketproxy.WebSocketProxy):
    """websockify's proxy server, with its own web server off (only WebSocket upgrades)."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("RequestHandlerClass", ConsoleRequestHandler)
        super().__init__(
            token_plugin=None,
            auth_plugin=None,
            web="",
            heartbeat=settings.KVMPANEL_CONSOLE_HEARTBEAT_SECONDS,
            **kwargs,
        )
