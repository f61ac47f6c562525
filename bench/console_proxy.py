"""Console proxy: connect time, throughput, added latency and 50 consoles at once, on the lab.

DESIGN (issue 3): the console proxy is websockify, one forked process per connection, with the
ticket check in front. The targets are at least 0.80 of a direct VNC connection's throughput, at
most 1 ms of added latency (p50), and 50 consoles open at once. This script measures them; it
prints the figures and never judges them.

* Set-up: lab up (scripts/lab/lab.sh), the private Redis, a throwaway SQLite database under
  var/bench/, lab host 1 registered through the real add-host path, TWO running tiny guests on it
  (name prefix "b-con-", both created at the start, forced off and deleted at the end), and a
  non-superuser with the VMUser role on each, so every ticket goes through the permission gate.
  The proxy is `manage.py console_proxy`, run as a subprocess on a free 127.0.0.1 port. It uses
  the same database (DATABASE_URL, sqlite:////absolute/path, with kvmpanel.settings, because
  tests.settings pins the test suite's database) and the same Redis. Both processes use the Redis
  namespace "kvmpanel-bench" (the proxy also as its channel prefix; this process's channel layer
  is in memory), so their tickets and console counts never mix with the test suite's
  ("kvmpanel-test") or a running panel's ("kvmpanel"); the bench empties that namespace's console
  keys before it starts.
* Connect, throughput and latency use the first guest only.
* Connect: 50 sequential connects, each with a fresh ticket (issued in-process, not timed). Each
  is timed from the start of the TCP connect until the "RFB 003.008" banner arrives through the
  WebSocket.
* Throughput: RFB 3.8 (security None, shared), raw encoding only, 32 bpp. The client sends
  non-incremental FramebufferUpdateRequests for the full screen, one at a time, and reads each
  update completely. It alternates 1 s slices between the VNC unix socket (direct) and the proxy,
  5 s each way. QEMU only answers update requests at its display refresh, which backs off to a
  few per second while the screen is idle. So the guest's shell runs a 20 ms ping (typed through
  VNC) to keep QEMU at its fastest pace (every 30 ms). The "drain" and "burst" figures time one
  update from its first byte to its last: that is the relay's own capacity.
* Added latency: a 1x1 update request only measures QEMU's refresh timer, so it is reported but
  not used for this figure (console_*_update_rtt_*). The figure comes from a request QEMU answers
  at once: SetEncodings naming ExtendedKeyEvent, which QEMU acknowledges immediately. 500 round
  trips each way, alternating direct and proxy; added = proxy percentile - direct percentile.
* Concurrency: QEMU serves at most 32 VNC clients per display (its "connections" option), and
  KVMPANEL_CONSOLE_MAX_PER_VM is capped at 32 to match, so the 50 consoles are spread over the
  two guests: 25 tickets for each, then 50 threads connect at once, 25 to each guest. A console
  counts as ok (console_concurrent_ok) once it has had the banner, the handshake and one
  full-screen update. All stay open until every attempt has finished. The same test is run
  straight against the two VNC sockets (25 each) for comparison; console_concurrent_up_seconds is
  the bring-up wall time, from the start line to the last console's outcome.

The WebSocket client is a minimal RFC 6455 client on a plain socket, with TCP_NODELAY as
browsers set it. The proxy's figures therefore carry no client-library overhead that the direct
ones lack. MB are 10^6 bytes of RFB data. Output is `name: value` lines on stdout, with progress
on stderr. The script exits non-zero when something it measured is wrong: a refused ticket, a
malformed update, a relayed console without an audit event, fewer than 50 consoles up through
the proxy while all 50 came up straight to QEMU, or (the comparison then proves nothing) fewer
than 50 straight to QEMU. It never judges the timings.

Run from the repository root: `.venv/bin/python bench/console_proxy.py`.
"""

import base64
import contextlib
import functools
import hashlib
import os
import signal
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from apps.accounts.models import User
    from apps.hosts.models import Host
    from apps.vms.models import VirtualMachine

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "var" / "bench"
DB_PATH = BENCH_DIR / "console.sqlite3"
PROXY_LOG = BENCH_DIR / "console-proxy.log"
LAB = ROOT / "scripts" / "lab" / "lab.sh"
REDIS = ROOT / "scripts" / "redis.sh"
LAB_HOST = 1
GUEST_PREFIX = "b-con-"
ORIGIN = "http://127.0.0.1:8000"

CONNECTS = 50
THROUGHPUT_SLICES = 5  # per direction, alternating
SLICE_SECONDS = 1.0
WARMUP_UPDATES = 3
LATENCY_ROUNDS = 500
LATENCY_WARMUP = 20
UPDATE_RTT_ROUNDS = 200
GUESTS = 2
CONCURRENT_PER_GUEST = 25  # within QEMU's 32 VNC clients per display and KVMPANEL_CONSOLE_MAX_PER_VM's cap
CONCURRENT = GUESTS * CONCURRENT_PER_GUEST
WEBVIRTCLOUD_CONNECT_MS = 21.7  # the reference from the issue, measured on this kind of machine

BOOT_TIMEOUT = 180  # two guests boot at once under TCG, on a machine that may be busy
IO_TIMEOUT = 15
CONCURRENT_TIMEOUT = 60
SCRATCH_BYTES = 1 << 20
AUDIT_TIMEOUT = 15  # the proxy writes "opened" events beside the relay, not before it

# Redis keys (console tickets and counts) and channel groups of this bench only, in both processes.
BENCH_NAMESPACE = "kvmpanel-bench"
# The open-console caps and the ticket rate limit, raised for both this process and the proxy
# (the per-VM cap only to its maximum, 32).
BENCH_ENV = {
    "KVMPANEL_CONSOLE_MAX_PER_USER": "100",
    "KVMPANEL_CONSOLE_MAX_PER_VM": "32",
    "KVMPANEL_CONSOLE_TICKETS_PER_MINUTE": "1000",
    "KVMPANEL_CONSOLE_ALLOWED_ORIGINS": ORIGIN,
    "KVMPANEL_REDIS_NAMESPACE": BENCH_NAMESPACE,
    "KVMPANEL_CHANNEL_PREFIX": BENCH_NAMESPACE,
}

RFB_BANNER = b"RFB 003.008\n"
SECURITY_NONE = 1
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
# SetPixelFormat: 32 bpp, depth 24, little-endian true colour, 8 bits per channel.
SET_PIXEL_FORMAT = struct.pack(">B3x", 0) + struct.pack(">BBBBHHHBBB3x", 32, 24, 0, 1, 255, 255, 255, 16, 8, 0)
SET_ENCODINGS_RAW = struct.pack(">BxHi", 2, 1, 0)  # raw only: no pseudo-encodings, so no surprises
EXTENDED_KEY_EVENT = -258
SET_ENCODINGS_ECHO = struct.pack(">BxHii", 2, 2, 0, EXTENDED_KEY_EVENT)
KEY_RETURN, KEY_CONTROL = 0xFF0D, 0xFFE3
BUSY_COMMAND = "ping -i 0.02 127.0.0.1\n"
BYTES_PER_PIXEL = 4


class BenchError(Exception):
    """Something is wrong with what was measured: the figures would be meaningless."""


class ConsoleError(BenchError):
    """A console connection misbehaved (refused, closed, or spoke something that is not RFB)."""


def progress(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


# --- the clients: a byte stream over a unix socket (direct) or WebSocket frames (proxy) ----------


class Stream(Protocol):
    def recv_into(self, view: memoryview) -> int: ...

    def sendall(self, data: bytes) -> None: ...

    def close(self) -> None: ...


def recv_exact(stream: Stream, size: int) -> bytearray:
    buffer = bytearray(size)
    view = memoryview(buffer)
    got = 0
    while got < size:
        count = stream.recv_into(view[got:])
        if not count:
            raise ConsoleError(f"connection closed after {got} of {size} bytes")
        got += count
    return buffer


def skip(stream: Stream, size: int, scratch: memoryview) -> None:
    while size:
        count = stream.recv_into(scratch[: min(size, len(scratch))])
        if not count:
            raise ConsoleError(f"connection closed with {size} bytes of pixel data to go")
        size -= count


class DirectStream:
    """QEMU's VNC unix socket, as the proxy itself reaches it."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # A blocking connect waits for room in QEMU's short listen backlog, as the proxy's does;
        # with a timeout set, a unix connect fails at once with EAGAIN instead.
        self.sock.connect(path)
        self.sock.settimeout(IO_TIMEOUT)

    def recv_into(self, view: memoryview) -> int:
        return self.sock.recv_into(view)

    def sendall(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close(self) -> None:
        self.sock.close()


class WebSocketStream:
    """A minimal RFC 6455 client: the ticket in Sec-WebSocket-Protocol, binary frames in and out.

    What the proxy relays is a byte stream cut into frames wherever its reads happened to end, so
    reads go straight from the socket into the caller's buffer, frame header by frame header.
    """

    def __init__(self, sock: socket.socket, pending: bytes) -> None:
        self.sock = sock
        self._pending = pending  # bytes read past the HTTP response
        self._left = 0  # payload bytes still to come in the current data frame

    @classmethod
    def open(cls, port: int, ticket: str, *, origin: str = ORIGIN, timeout: float = IO_TIMEOUT) -> "WebSocketStream":
        from apps.console.services import TICKET_PROTOCOL_PREFIX

        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            key = base64.b64encode(os.urandom(16)).decode()
            request = (
                f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nOrigin: {origin}\r\n"
                f"Sec-WebSocket-Protocol: binary, {TICKET_PROTOCOL_PREFIX}{ticket}\r\n\r\n"
            )
            sock.sendall(request.encode())
            response = b""
            while b"\r\n\r\n" not in response:
                chunk = sock.recv(4096)
                if not chunk:
                    raise ConsoleError(f"the proxy closed the connection during the upgrade: {response[:80]!r}")
                response += chunk
            head, _, rest = response.partition(b"\r\n\r\n")
            status, *lines = head.decode("latin-1").split("\r\n")
            if not status.startswith("HTTP/1.1 101"):
                raise ConsoleError(f"upgrade refused: {status}")
            fields = (line.partition(":") for line in lines)
            headers = {name.strip().lower(): value.strip() for name, _, value in fields}
            accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()  # noqa: S324 - RFC 6455
            if headers.get("sec-websocket-accept") != accept:
                raise ConsoleError("wrong Sec-WebSocket-Accept in the upgrade response")
            if headers.get("sec-websocket-protocol") != "binary":
                raise ConsoleError(f"the proxy chose subprotocol {headers.get('sec-websocket-protocol')!r}")
        except BaseException:
            sock.close()
            raise
        return cls(sock, rest)

    def _raw_recv_into(self, view: memoryview) -> int:
        if self._pending:
            count = min(len(view), len(self._pending))
            view[:count] = self._pending[:count]
            self._pending = self._pending[count:]
            return count
        count = self.sock.recv_into(view)
        if not count:
            raise ConsoleError("the proxy closed the connection")
        return count

    def _raw_exact(self, size: int) -> bytearray:
        buffer = bytearray(size)
        view = memoryview(buffer)
        got = 0
        while got < size:
            got += self._raw_recv_into(view[got:])
        return buffer

    def _next_data_frame(self) -> None:
        while True:
            first, second = self._raw_exact(2)
            opcode, length = first & 0x0F, second & 0x7F
            if second & 0x80:
                raise ConsoleError("the proxy sent a masked frame")
            if length == 126:
                (length,) = struct.unpack(">H", self._raw_exact(2))
            elif length == 127:
                (length,) = struct.unpack(">Q", self._raw_exact(8))
            if opcode in {OP_CONTINUATION, OP_BINARY}:
                if length:
                    self._left = length
                    return
                continue
            payload = bytes(self._raw_exact(length))
            if opcode == OP_CLOSE:
                code = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else None
                raise ConsoleError(f"the proxy closed the console ({code}: {payload[2:].decode(errors='replace')})")
            if opcode == OP_PING:
                self._send_frame(OP_PONG, payload)
            elif opcode != OP_PONG:
                raise ConsoleError(f"unexpected WebSocket opcode {opcode}")

    def recv_into(self, view: memoryview) -> int:
        if not self._left:
            self._next_data_frame()
        count = self._raw_recv_into(view[: self._left])
        self._left -= count
        return count

    def sendall(self, data: bytes) -> None:
        self._send_frame(OP_BINARY, data)

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        length = len(payload)
        if length < 126:
            head = struct.pack(">BB", 0x80 | opcode, 0x80 | length)
        elif length < 1 << 16:
            head = struct.pack(">BBH", 0x80 | opcode, 0x80 | 126, length)
        else:
            head = struct.pack(">BBQ", 0x80 | opcode, 0x80 | 127, length)
        mask = os.urandom(4)
        keystream = (mask * (length // 4 + 1))[:length]
        masked = (int.from_bytes(payload, "big") ^ int.from_bytes(keystream, "big")).to_bytes(length, "big")
        self.sock.sendall(head + mask + masked)

    def close(self) -> None:
        """Close politely (close frame, then wait for the proxy to hang up), so every console ends
        the way a browser's does and the proxy's child exits before the next one starts."""
        with contextlib.suppress(OSError):
            self._send_frame(OP_CLOSE, struct.pack(">H", 1000))
            self.sock.shutdown(socket.SHUT_WR)
            self.sock.settimeout(5)
            while self.sock.recv(1 << 16):
                pass
        self.sock.close()


# --- RFB 3.8 -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Screen:
    width: int
    height: int
    name: str


def rfb_handshake(stream: Stream, *, banner_seen: bool = False) -> Screen:
    """Version, security None, shared ClientInit, then raw encoding at 32 bpp."""
    if not banner_seen:
        banner = bytes(recv_exact(stream, len(RFB_BANNER)))
        if banner != RFB_BANNER:
            raise ConsoleError(f"expected the RFB 3.8 banner, got {banner!r}")
    stream.sendall(RFB_BANNER)
    (count,) = recv_exact(stream, 1)
    if not count:
        (length,) = struct.unpack(">I", recv_exact(stream, 4))
        raise ConsoleError(f"VNC server refused the connection: {bytes(recv_exact(stream, length))!r}")
    types = recv_exact(stream, count)
    if SECURITY_NONE not in types:
        raise ConsoleError(f"VNC server does not offer security type None (offers {list(types)})")
    stream.sendall(bytes([SECURITY_NONE]))
    (result,) = struct.unpack(">I", recv_exact(stream, 4))
    if result:
        raise ConsoleError(f"VNC security handshake failed ({result})")
    stream.sendall(b"\x01")  # shared: other viewers stay connected
    init = recv_exact(stream, 24)
    width, height = struct.unpack(">HH", init[:4])
    (name_length,) = struct.unpack(">I", init[20:24])
    name = recv_exact(stream, name_length).decode(errors="replace")
    stream.sendall(SET_PIXEL_FORMAT + SET_ENCODINGS_RAW)
    return Screen(width, height, name)


def update_request(x: int, y: int, width: int, height: int) -> bytes:
    return struct.pack(">BBHHHH", 3, 0, x, y, width, height)  # non-incremental


@dataclass(frozen=True)
class Update:
    received: int  # RFB bytes of the FramebufferUpdate
    covered: int  # pixels in its raw rectangles
    first_byte_at: float  # perf_counter() when its first byte arrived


def read_update(stream: Stream, scratch: memoryview, *, pseudo: frozenset[int] = frozenset()) -> Update:
    """The next FramebufferUpdate; other server messages are skipped. Raw rectangles carry
    w*h*4 bytes; the pseudo-encodings in `pseudo` (asked for by the caller) carry none."""
    while True:
        (kind,) = recv_exact(stream, 1)
        first_byte_at = time.perf_counter()
        if kind == 0:
            break
        if kind == 1:  # SetColourMapEntries
            (_first, colours) = struct.unpack(">xHH", recv_exact(stream, 5))
            skip(stream, colours * 6, scratch)
        elif kind == 3:  # ServerCutText
            (length,) = struct.unpack(">3xI", recv_exact(stream, 7))
            skip(stream, length, scratch)
        elif kind != 2:  # 2 is Bell: no body
            raise ConsoleError(f"unknown RFB server message type {kind}")
    (rectangles,) = struct.unpack(">xH", recv_exact(stream, 3))
    received, covered = 4, 0
    for _ in range(rectangles):
        _x, _y, width, height, encoding = struct.unpack(">HHHHi", recv_exact(stream, 12))
        received += 12
        if encoding in pseudo:
            continue
        if encoding != 0:
            raise ConsoleError(f"a rectangle with encoding {encoding}; only raw (0) was asked for")
        size = width * height * BYTES_PER_PIXEL
        skip(stream, size, scratch)
        received += size
        covered += width * height
    return Update(received, covered, first_byte_at)


def full_update(stream: Stream, screen: Screen, scratch: memoryview) -> Update:
    stream.sendall(update_request(0, 0, screen.width, screen.height))
    update = read_update(stream, scratch)
    if update.covered != screen.width * screen.height:
        raise ConsoleError(f"a full-screen update covered {update.covered} pixels, not {screen.width * screen.height}")
    return update


def small_update(stream: Stream, scratch: memoryview) -> None:
    stream.sendall(update_request(0, 0, 1, 1))
    if read_update(stream, scratch).covered < 1:
        raise ConsoleError("the update for a 1x1 request covered no pixels")


def echo(stream: Stream, scratch: memoryview) -> None:
    """SetEncodings naming ExtendedKeyEvent: QEMU acknowledges it at once, from its main loop, with a
    FramebufferUpdate holding one pseudo-rectangle and no pixels. An update request, by contrast, is
    only answered at QEMU's next display refresh (every 30 ms at best, up to 3 s when the screen is
    idle), which would bury a sub-millisecond difference in timer noise."""
    stream.sendall(SET_ENCODINGS_ECHO)
    update = read_update(stream, scratch, pseudo=frozenset({EXTENDED_KEY_EVENT}))
    if update.received != 4 + 12 or update.covered:
        raise ConsoleError(f"expected the ExtendedKeyEvent acknowledgement, got {update}")


def press(stream: Stream, *keysyms: int) -> None:
    """Press the keys in order, then release them in reverse (a chord such as Ctrl+C)."""
    stream.sendall(
        b"".join(struct.pack(">BBxxI", 4, 1, key) for key in keysyms)
        + b"".join(struct.pack(">BBxxI", 4, 0, key) for key in reversed(keysyms))
    )


@contextlib.contextmanager
def busy_screen(stream: Stream):
    """Keep the guest's screen changing, so QEMU refreshes at its fastest (every 30 ms): the root
    shell on tty1 runs a ping every 20 ms (each line differs; no shifted keys needed), and Ctrl+C
    stops it. An idle text screen only changes when the cursor blinks, and QEMU then backs off
    its refresh to a few per second."""
    for char in BUSY_COMMAND:
        press(stream, KEY_RETURN if char == "\n" else ord(char))
    time.sleep(1)
    try:
        yield
    finally:
        with contextlib.suppress(OSError, ConsoleError):
            press(stream, KEY_CONTROL, ord("c"))
            time.sleep(0.5)


# --- set-up ------------------------------------------------------------------------------------


def configure_django() -> None:
    """tests.settings, with this bench's database, caps, Redis namespace and an in-memory channel layer."""
    sys.path.insert(0, str(ROOT))
    os.environ.update(BENCH_ENV)
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    import django
    from django.conf import settings

    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{DB_PATH}{suffix}").unlink(missing_ok=True)
    settings.DATABASES["default"]["NAME"] = DB_PATH
    settings.KVMPANEL_REDIS_NAMESPACE = BENCH_NAMESPACE  # tests.settings pins "kvmpanel-test" over the env
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    settings.LOGGING["root"]["level"] = "WARNING"
    warnings.filterwarnings("ignore", message="No directory at", category=UserWarning)
    django.setup()


def run_script(script: Path, *args: str) -> str:
    result = subprocess.run(["bash", str(script), *args], capture_output=True, text=True, check=False)
    if result.returncode:
        raise BenchError(f"{script.name} {' '.join(args)} failed: {result.stderr.strip()[-300:]}")
    return result.stdout.strip()


def serial_log(name: str) -> Path:
    from tests.support.lab import serial_log as lab_serial_log  # after django.setup(): it imports models

    return lab_serial_log(LAB_HOST, name)


def remove_logs(name: str) -> None:
    """The guest's serial log and libvirt's log of its QEMU: both outlive the domain."""
    serial_log(name).unlink(missing_ok=True)
    serial_log(name).with_name(f"{name}.log").unlink(missing_ok=True)


def remove_guest(uri: str, uuid_: str) -> None:
    from kvmpanel.virt import domain
    from kvmpanel.virt.errors import HypervisorError

    with contextlib.suppress(HypervisorError):
        domain.force_off(uri, uuid_)
    with contextlib.suppress(HypervisorError):
        domain.undefine(uri, uuid_, remove_storage=True)


def delete_volumes(uri: str, wanted: Callable[[str], bool]) -> None:
    """Delete the disks of pool "default" whose names `wanted` picks (no service deletes a lone volume)."""
    from kvmpanel.virt.connection import call

    def run(conn) -> None:
        pool = conn.storagePoolLookupByName("default")
        pool.refresh(0)
        for name in pool.listVolumes():
            if wanted(name):
                pool.storageVolLookupByName(name).delete(0)

    call(uri, run)


def remove_stale_guests(uri: str) -> None:
    """Guests (and disks) left by an earlier run of this bench that was killed: they would eat CPU."""
    from kvmpanel.virt import domain

    for summary in domain.list_domains(uri, with_addresses=False):
        if summary.name.startswith(GUEST_PREFIX):
            progress(f"removing {summary.name}, left over from an earlier run")
            remove_guest(uri, summary.uuid)
            remove_logs(summary.name)
    delete_volumes(uri, lambda name: name.startswith(GUEST_PREFIX))


@dataclass
class Lab:
    operator: "User"
    host: "Host"
    vms: list["VirtualMachine"] = field(default_factory=list)  # every guest defined so far, to delete


def create_guest(lab: Lab) -> "VirtualMachine":
    """A tiny live-ISO guest (no NIC: the console needs none), defined and started by the services."""
    from apps.vms import services as vm_services
    from kvmpanel.virt import storage
    from kvmpanel.virt import xml as domain_xml

    uri = lab.host.uri
    name = f"{GUEST_PREFIX}{uuid.uuid4().hex[:6]}"
    iso = storage.find_volume_in_pool(uri, "iso", "labos-live.iso")
    if iso is None:
        raise BenchError("labos-live.iso is not in the lab's iso pool")
    disk = storage.create_volume(uri, "default", f"{name}.qcow2", capacity_bytes=32 << 20)
    spec = vm_services.tiny_guest_spec(name, disk_path=disk, iso_path=iso)
    serial_log(name).unlink(missing_ok=True)
    try:
        vm = vm_services.define_vm(lab.host, domain_xml.build_domain_xml(spec), actor=lab.operator)
    except Exception:
        delete_volumes(uri, lambda volume: volume == f"{name}.qcow2")
        raise
    lab.vms.append(vm)
    vm = vm_services.run_lifecycle(vm, "start", actor=lab.operator)
    lab.vms[-1] = vm
    return vm


def delete_guests(lab: Lab) -> None:
    """Force off and delete each guest through the services; straight through libvirt if that fails."""
    from apps.vms import services as vm_services

    for vm in lab.vms:
        progress(f"removing {vm.name}")
        try:
            vm.refresh_from_db()
            vm = vm_services.run_lifecycle(vm, "force-off", actor=lab.operator)
            vm_services.delete_vm(vm, actor=lab.operator, remove_disks=True)
        except Exception as error:  # a ServiceError or anything else: every guest must go regardless
            progress(f"deleting {vm.name} through the services failed ({error}); removing it directly")
            remove_guest(lab.host.uri, vm.uuid)
        remove_logs(vm.name)


def create_console_user(vms: list["VirtualMachine"], operator: "User") -> "User":
    from apps.accounts.models import User
    from apps.accounts.privileges import VM_USER
    from apps.accounts.services import grant_role
    from apps.console.services import console_privilege

    user = User.objects.create_user(username="bench-console", password="bench-password-not-secret")
    for vm in vms:
        grant_role(actor=operator, role=VM_USER, scope=vm.scope, user=user)
    if user.is_superuser or any(console_privilege(user, vm) != (True, False) for vm in vms):
        raise BenchError("the bench user should have the full console privilege through VMUser, and nothing more")
    return user


def vnc_socket(vm: "VirtualMachine") -> str:
    """The VNC unix socket as this machine sees it (the inventory's "vnc unix:<path>", path-mapped)."""
    kind, _, where = vm.console.partition(" ")
    if kind != "vnc" or not where.startswith("unix:"):
        raise BenchError(f"the guest's console is {vm.console!r}, not a VNC unix socket")
    path = vm.host.local_path(where.removeprefix("unix:"))
    if not Path(path).exists():
        raise BenchError(f"the VNC socket {path} does not exist")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Proxy:
    process: subprocess.Popen
    port: int

    def children(self) -> list[int]:
        pid = self.process.pid
        try:
            return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        except OSError:
            return []


def start_proxy() -> Proxy:
    """`manage.py console_proxy` with kvmpanel.settings on this bench's database (tests.settings would
    pin the test suite's), the same Redis and namespace, and the same raised caps."""
    port = free_port()
    env = {
        **os.environ,
        **BENCH_ENV,
        "DJANGO_SETTINGS_MODULE": "kvmpanel.settings",
        # sqlite:////abs/path: four slashes, as DB_PATH is absolute (three would make it relative).
        "DATABASE_URL": f"sqlite:///{DB_PATH.as_posix()}",
        "KVMPANEL_CONSOLE_URL": f"ws://127.0.0.1:{port}/",
        "KVMPANEL_LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }
    with open(PROXY_LOG, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "console_proxy", "--listen", f"127.0.0.1:{port}"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    proxy = Proxy(process, port)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"the console proxy exited with {process.returncode}; see {PROXY_LOG}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proxy
        except OSError:
            time.sleep(0.1)
    stop_proxy(proxy)
    raise BenchError(f"the console proxy does not listen on {port}")


def stop_proxy(proxy: Proxy) -> None:
    children = proxy.children()
    proxy.process.terminate()
    try:
        proxy.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proxy.process.kill()
        proxy.process.wait()
    for pid in children:  # forked per connection: none should outlive the proxy
        with contextlib.suppress(OSError):
            if b"console_proxy" in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGTERM)


# --- measurement -------------------------------------------------------------------------------


@dataclass
class Relay:
    """One way to the console (direct or through the proxy) and what it achieved."""

    received: int = 0
    updates: int = 0
    seconds: float = 0.0
    drain_ms: list[float] = field(default_factory=list)  # an update's first byte to its last
    update_rtt_ms: list[float] = field(default_factory=list)  # 1x1 update request -> its update
    echo_ms: list[float] = field(default_factory=list)  # SetEncodings -> QEMU's immediate answer

    @property
    def mb_per_s(self) -> float:
        return self.received / self.seconds / 1e6

    @property
    def updates_per_s(self) -> float:
        return self.updates / self.seconds

    @property
    def burst_mb_per_s(self) -> float:
        """How fast one update streams once it has started: the relay's capacity, not QEMU's pace."""
        return self.received / self.updates / statistics.median(self.drain_ms) * 1000 / 1e6


@dataclass
class Concurrency:
    tried: int = 0
    banners: int = 0
    ok: int = 0
    seconds: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)


@dataclass
class Results:
    screen: Screen | None = None
    connect_ms: list[float] = field(default_factory=list)
    direct: Relay = field(default_factory=Relay)
    proxy: Relay = field(default_factory=Relay)
    concurrent: Concurrency = field(default_factory=Concurrency)
    concurrent_direct: Concurrency = field(default_factory=Concurrency)
    proxy_processes_peak: int = 0
    consoles_relayed: int = 0  # banners that reached a client through the proxy: each must be audited


Sampler = Callable[[], None]


class Tickets:
    def __init__(self, vm: "VirtualMachine", user: "User") -> None:
        self.vm, self.user = vm, user

    def __call__(self) -> str:
        from apps.console.services import issue_ticket

        return issue_ticket(self.vm, actor=self.user).ticket


def read_banner(stream: Stream) -> None:
    banner = bytes(recv_exact(stream, len(RFB_BANNER)))
    if banner != RFB_BANNER:
        raise ConsoleError(f"expected the RFB 3.8 banner, got {banner!r}")


def measure_connects(port: int, tickets: Tickets, results: Results) -> None:
    for _ in range(CONNECTS):
        ticket = tickets()
        start = time.perf_counter()
        stream = WebSocketStream.open(port, ticket)
        try:
            read_banner(stream)
            results.connect_ms.append((time.perf_counter() - start) * 1000)
            results.consoles_relayed += 1
        finally:
            stream.close()


def throughput_slice(stream: Stream, screen: Screen, scratch: memoryview, relay: Relay) -> None:
    """Full-screen updates, one request at a time, for SLICE_SECONDS."""
    start = time.perf_counter()
    while time.perf_counter() - start < SLICE_SECONDS:
        update = full_update(stream, screen, scratch)
        relay.drain_ms.append((time.perf_counter() - update.first_byte_at) * 1000)
        relay.received += update.received
        relay.updates += 1
    relay.seconds += time.perf_counter() - start


def timed(samples: list[float], action: Callable[[], None]) -> None:
    start = time.perf_counter()
    action()
    samples.append((time.perf_counter() - start) * 1000)


def measure_relay(direct: Stream, proxied: Stream, screen: Screen, results: Results) -> None:
    scratch = memoryview(bytearray(SCRATCH_BYTES))
    ways = ((direct, results.direct), (proxied, results.proxy))
    with busy_screen(direct):
        for stream, _relay in ways:
            for _ in range(WARMUP_UPDATES):
                full_update(stream, screen, scratch)
        for _ in range(THROUGHPUT_SLICES):
            for stream, relay in ways:
                throughput_slice(stream, screen, scratch, relay)
        progress(
            f"throughput: direct {results.direct.mb_per_s:.1f} MB/s ({results.direct.updates_per_s:.1f} updates/s), "
            f"proxy {results.proxy.mb_per_s:.1f} MB/s ({results.proxy.updates_per_s:.1f} updates/s)"
        )
        progress(f"{UPDATE_RTT_ROUNDS} 1x1 update requests each way, alternating")
        for _ in range(UPDATE_RTT_ROUNDS):
            for stream, relay in ways:
                timed(relay.update_rtt_ms, lambda stream=stream: small_update(stream, scratch))
    progress(f"{LATENCY_ROUNDS} immediate round trips (SetEncodings -> ExtendedKeyEvent ack) each way, alternating")
    for _ in range(LATENCY_WARMUP):
        for stream, _relay in ways:
            echo(stream, scratch)
    for _ in range(LATENCY_ROUNDS):
        for stream, relay in ways:
            timed(relay.echo_ms, lambda stream=stream: echo(stream, scratch))


Attempt = tuple[Callable[[], Stream], Screen]  # how to open one console, and the screen it must show


def open_many(attempts: list[Attempt], *, sample: Sampler | None = None) -> Concurrency:
    """All the consoles started at once, each to the banner, the handshake and one full-screen
    update; all stay open until every one has been tried (so they really are open at once)."""
    result = Concurrency()
    total = len(attempts)
    start_line = threading.Barrier(total + 1)
    all_tried = threading.Event()
    lock = threading.Lock()
    finished: list[float] = []

    def console(connect: Callable[[], Stream], screen: Screen) -> None:
        stream = None
        outcome = "ok"
        try:
            start_line.wait(timeout=CONCURRENT_TIMEOUT)
            stream = connect()
            read_banner(stream)
            with lock:
                result.banners += 1
            seen = rfb_handshake(stream, banner_seen=True)
            if (seen.width, seen.height) != (screen.width, screen.height):
                raise ConsoleError(f"screen is {seen.width}x{seen.height} on this console")
            full_update(stream, screen, memoryview(bytearray(SCRATCH_BYTES // 4)))
        except Exception as error:  # every failure is counted and reported
            outcome = f"{type(error).__name__}: {error}"
        with lock:
            result.tried += 1
            result.ok += outcome == "ok"
            if outcome != "ok":
                result.errors[outcome] = result.errors.get(outcome, 0) + 1
            finished.append(time.perf_counter())
            if result.tried == total:
                all_tried.set()
        all_tried.wait(timeout=CONCURRENT_TIMEOUT)
        if stream is not None:
            stream.close()

    stop_sampling = threading.Event()

    def sampler() -> None:
        while not stop_sampling.wait(0.01):
            sample()

    threads = [threading.Thread(target=console, args=attempt, daemon=True) for attempt in attempts]
    if sample is not None:
        threads.append(threading.Thread(target=sampler, daemon=True))
    for thread in threads:
        thread.start()
    start_line.wait(timeout=CONCURRENT_TIMEOUT)
    started = time.perf_counter()
    all_tried.wait(timeout=CONCURRENT_TIMEOUT * 2)
    stop_sampling.set()
    for thread in threads:
        thread.join(timeout=CONCURRENT_TIMEOUT)
    result.seconds = max(finished) - started if finished else float("nan")
    if result.tried < total:
        result.errors["no outcome (thread hung)"] = total - result.tried
    return result


@dataclass(frozen=True)
class Guest:
    """One bench guest, as its consoles see it."""

    vm: "VirtualMachine"
    tickets: Tickets
    socket: str  # its VNC unix socket, as this machine sees it
    screen: Screen


def console_guest(vm: "VirtualMachine", user: "User") -> Guest:
    """The guest's VNC socket and screen (one direct handshake), checked to be this guest's."""
    path = vnc_socket(vm)
    stream = DirectStream(path)
    try:
        screen = rfb_handshake(stream)
    finally:
        stream.close()
    if screen.name != f"QEMU ({vm.name})":
        raise ConsoleError(f"the console of {vm.name} shows desktop {screen.name!r}")
    return Guest(vm, Tickets(vm, user), path, screen)


def measure_concurrency(proxy: Proxy, guests: list[Guest], results: Results) -> None:
    from django.conf import settings

    cap = settings.KVMPANEL_CONSOLE_MAX_PER_VM
    if cap < CONCURRENT_PER_GUEST:
        raise BenchError(f"KVMPANEL_CONSOLE_MAX_PER_VM is {cap}: {CONCURRENT_PER_GUEST} per guest would be refused")
    # Tickets first (issuing is not what is measured); the consoles of the guests interleave.
    issued = [[guest.tickets() for _ in range(CONCURRENT_PER_GUEST)] for guest in guests]
    through_proxy: list[Attempt] = [
        (functools.partial(WebSocketStream.open, proxy.port, tickets[index], timeout=CONCURRENT_TIMEOUT), guest.screen)
        for index in range(CONCURRENT_PER_GUEST)
        for guest, tickets in zip(guests, issued, strict=True)
    ]
    direct: list[Attempt] = [
        (functools.partial(DirectStream, guest.socket), guest.screen)
        for _ in range(CONCURRENT_PER_GUEST)
        for guest in guests
    ]

    def count_children() -> None:
        results.proxy_processes_peak = max(results.proxy_processes_peak, len(proxy.children()))

    results.concurrent = open_many(through_proxy, sample=count_children)
    results.consoles_relayed += results.concurrent.banners
    for error, count in sorted(results.concurrent.errors.items()):
        progress(f"through the proxy: {count} x {error}")
    progress(f"the same {CONCURRENT} straight to the guests' VNC sockets ({CONCURRENT_PER_GUEST} each), for comparison")
    results.concurrent_direct = open_many(direct)
    for error, count in sorted(results.concurrent_direct.errors.items()):
        progress(f"direct: {count} x {error}")


def count_open_events(user: "User") -> int:
    from apps.audit.models import AuditEvent

    return AuditEvent.objects.filter(verb="console.vnc.open", actor=user).count()


def check_audit(user: "User", relayed: int) -> None:
    """The proxy writes console.vnc.open for every console it relays (beside the relay, so it may
    land a moment after the banner): every banner seen needs one."""
    deadline = time.monotonic() + AUDIT_TIMEOUT
    while (opened := count_open_events(user)) < relayed and time.monotonic() < deadline:
        time.sleep(0.1)
    if opened < relayed:
        raise BenchError(f"{relayed} consoles were relayed but only {opened} console.vnc.open events were written")


def measure(lab: Lab, proxy: Proxy, results: Results) -> "User":
    user = create_console_user(lab.vms, lab.operator)
    guests = [console_guest(vm, user) for vm in lab.vms]
    first = guests[0]
    results.screen = first.screen

    progress(f"{CONNECTS} sequential connects to {first.vm.name}, a fresh ticket each")
    measure_connects(proxy.port, first.tickets, results)

    progress("throughput: full-screen raw updates, 1 s slices alternating direct and proxy, screen busy")
    direct = DirectStream(first.socket)
    proxied: Stream | None = None
    try:
        screen = rfb_handshake(direct)
        proxied = WebSocketStream.open(proxy.port, first.tickets())
        proxied_screen = rfb_handshake(proxied)
        results.consoles_relayed += 1
        if (proxied_screen.width, proxied_screen.height) != (screen.width, screen.height):
            raise ConsoleError(f"the proxy's screen is {proxied_screen} but the direct one is {screen}")
        measure_relay(direct, proxied, screen, results)
    finally:
        direct.close()
        if proxied is not None:
            proxied.close()

    progress(f"{CONCURRENT} consoles at once through the proxy, {CONCURRENT_PER_GUEST} to each of {len(guests)} guests")
    measure_concurrency(proxy, guests, results)
    return user


# --- report ------------------------------------------------------------------------------------


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def report(results: Results) -> list[tuple[str, str]]:
    connect = statistics.median(results.connect_ms)
    screen, direct, proxy = results.screen, results.direct, results.proxy
    lines = [
        ("console_framebuffer", f"{screen.width}x{screen.height}"),
        ("console_connects", str(len(results.connect_ms))),
        ("console_connect_ms_median", f"{connect:.1f}"),
        ("console_connect_ms_p95", f"{percentile(results.connect_ms, 0.95):.1f}"),
        ("webvirtcloud_connect_ms_median", f"{WEBVIRTCLOUD_CONNECT_MS}"),
        ("console_connect_ratio_vs_webvirtcloud", f"{connect / WEBVIRTCLOUD_CONNECT_MS:.2f}"),
        ("console_direct_mb_per_s", f"{direct.mb_per_s:.1f}"),
        ("console_proxy_mb_per_s", f"{proxy.mb_per_s:.1f}"),
        ("console_throughput_ratio", f"{proxy.mb_per_s / direct.mb_per_s:.2f}"),
        ("console_direct_updates_per_s", f"{direct.updates_per_s:.1f}"),
        ("console_proxy_updates_per_s", f"{proxy.updates_per_s:.1f}"),
        ("console_direct_update_drain_ms_median", f"{statistics.median(direct.drain_ms):.2f}"),
        ("console_proxy_update_drain_ms_median", f"{statistics.median(proxy.drain_ms):.2f}"),
        ("console_direct_burst_mb_per_s", f"{direct.burst_mb_per_s:.0f}"),
        ("console_proxy_burst_mb_per_s", f"{proxy.burst_mb_per_s:.0f}"),
    ]
    for quantile, fraction in (("p50", 0.50), ("p99", 0.99)):
        lines += [
            (f"console_direct_rtt_ms_{quantile}", f"{percentile(direct.echo_ms, fraction):.3f}"),
            (f"console_proxy_rtt_ms_{quantile}", f"{percentile(proxy.echo_ms, fraction):.3f}"),
        ]
    for quantile, fraction in (("p50", 0.50), ("p99", 0.99)):
        added = percentile(proxy.echo_ms, fraction) - percentile(direct.echo_ms, fraction)
        lines.append((f"console_added_latency_ms_{quantile}", f"{added:.3f}"))
    for quantile, fraction in (("p50", 0.50), ("p99", 0.99)):
        lines += [
            (f"console_direct_update_rtt_ms_{quantile}", f"{percentile(direct.update_rtt_ms, fraction):.2f}"),
            (f"console_proxy_update_rtt_ms_{quantile}", f"{percentile(proxy.update_rtt_ms, fraction):.2f}"),
        ]
    lines += [
        ("console_concurrent_ok", str(results.concurrent.ok)),
        ("console_concurrent_total", str(CONCURRENT)),
        ("console_concurrent_banners", str(results.concurrent.banners)),
        ("console_concurrent_up_seconds", f"{results.concurrent.seconds:.2f}"),
        ("console_concurrent_direct_ok", str(results.concurrent_direct.ok)),
        ("console_concurrent_direct_up_seconds", f"{results.concurrent_direct.seconds:.2f}"),
        ("proxy_processes_peak", str(results.proxy_processes_peak)),
    ]
    return lines


def clear_console_keys() -> None:
    """Forget tickets and open consoles left in this bench's namespace by a run that was killed: the
    fresh database numbers users and VMs from 1 again, so they would count against this run. Only
    the bench's own namespace is touched, never the test suite's or a running panel's."""
    from apps.console import store

    redis = store.client()
    keys = list(redis.scan_iter(match=f"{BENCH_NAMESPACE}:console:*", count=1000))
    if keys:
        redis.delete(*keys)


def set_up_lab() -> Lab:
    from apps.accounts.models import User
    from apps.hosts import services as host_services
    from apps.hosts.lab import lab_path_map, lab_uri

    progress("lab up, Redis up")
    run_script(LAB, "up")
    run_script(REDIS, "start")
    clear_console_keys()
    operator = User.objects.create_user("bench-root", password="bench-password-not-secret", is_superuser=True)
    host = host_services.add_host(actor=operator, name="lab1", uri=lab_uri(LAB_HOST), path_map=lab_path_map(LAB_HOST))
    remove_stale_guests(host.uri)
    return Lab(operator=operator, host=host)


def run() -> int:
    started = time.perf_counter()
    configure_django()
    from django.core.management import call_command

    from apps.core.errors import ServiceError
    from kvmpanel.virt.connection import pool
    from kvmpanel.virt.errors import HypervisorError
    from tests.support.lab import boots_seen, wait_for

    results = Results()
    lab: Lab | None = None
    proxy: Proxy | None = None
    try:
        progress(f"migrating {DB_PATH.relative_to(ROOT)}")
        call_command("migrate", verbosity=0, interactive=False)
        lab = set_up_lab()
        for _ in range(GUESTS):
            create_guest(lab)
        names = [vm.name for vm in lab.vms]
        progress(f"started {', '.join(names)}; waiting for them to boot")
        booted = [lambda name=name: boots_seen(LAB_HOST, name) for name in names]
        try:
            wait_for(lambda: all(seen() for seen in booted), BOOT_TIMEOUT, f"{' and '.join(names)} to boot")
        except AssertionError as timeout:
            raise BenchError(str(timeout)) from timeout
        for vm in lab.vms:
            vm.refresh_from_db()
        proxy = start_proxy()
        progress(f"console proxy (pid {proxy.process.pid}) on 127.0.0.1:{proxy.port}")
        user = measure(lab, proxy, results)
        check_audit(user, results.consoles_relayed)
    except (BenchError, ServiceError, HypervisorError, OSError) as error:
        print(f"console_proxy: FAILED: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    finally:
        if proxy is not None:
            stop_proxy(proxy)
        if lab is not None:
            try:
                delete_guests(lab)
            except Exception as error:  # report it, and keep the original outcome
                progress(f"could not remove the guests: {type(error).__name__}: {error}")
        pool.close_all()
    for name, value in report(results):
        print(f"{name}: {value}")
    progress(f"done in {time.perf_counter() - started:.1f} s")
    concurrent, direct = results.concurrent, results.concurrent_direct
    if concurrent.ok < CONCURRENT and direct.ok == CONCURRENT:
        print(
            f"console_proxy: FAILED: of {CONCURRENT} consoles at once, {concurrent.banners} got the banner and "
            f"{concurrent.ok} a full update through the proxy, while all {direct.ok} came up straight to QEMU",
            file=sys.stderr,
        )
        return 1
    if direct.ok < CONCURRENT:
        print(
            f"console_proxy: FAILED: only {direct.ok} of {CONCURRENT} consoles came up straight to QEMU "
            f"({concurrent.ok} through the proxy): the lab cannot show whether the proxy serves {CONCURRENT}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(run())
