"""The serial console over the panel's WebSocket (a real daphne) against a real guest on the lab.

What gets the guest's ttyS0, what is refused, and when an open console is closed. A refusal comes
before the WebSocket upgrade (HTTP 403), so not one byte of console data reaches the client; a
console that is busy is accepted and closed at once with a clear reason, also without data.
"""

import json
import time
from dataclasses import dataclass

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from apps.accounts.models import Grant
from apps.accounts.services import grant_role
from apps.audit.models import AuditEvent
from apps.console import services as console
from apps.console.choices import ConsoleKind
from apps.core.errors import AccessDenied, ServiceError
from apps.vms import services as vm_services
from tests.conftest import make_user, session_cookie
from tests.support.lab import boots_seen, wait_for

pytestmark = pytest.mark.lab


@pytest.fixture
def running_guest(make_guest, operator):
    """Started: its serial console exists from the moment QEMU runs, before the guest has booted."""
    return vm_services.run_lifecycle(make_guest("ser"), "start", actor=operator)


@pytest.fixture
def booted_guest(running_guest):
    """Booted: the root shell on ttyS0 answers."""
    wait_for(lambda: boots_seen(1, running_guest.name) >= 1, 90, "the guest to boot")
    return running_guest


@pytest.fixture
def alice(running_guest, operator):
    user = make_user("alice")
    grant_role(actor=operator, role="VMUser", scope=running_guest.scope, user=user)
    return user


def ticket_for(vm, user, session: str | None) -> str:
    return console.issue_ticket(vm, actor=user, kind=ConsoleKind.SERIAL, session_key=session).ticket


def open_serial(panel, vm_id: int, ticket: str | None, cookie: str | None, *, origin: str | None = None):
    protocols = ["binary"] + ([console.TICKET_PROTOCOL_PREFIX + ticket] if ticket else [])
    return connect(
        f"ws://127.0.0.1:{panel.port}/ws/vms/{vm_id}/serial/",
        subprotocols=protocols,
        origin=origin or panel.url,
        additional_headers={"Cookie": f"sessionid={cookie}"} if cookie else {},
        open_timeout=10,
    )


def refused(panel, vm_id: int, ticket: str | None, cookie: str | None, **kwargs) -> None:
    with pytest.raises(InvalidStatus) as failure:
        open_serial(panel, vm_id, ticket, cookie, **kwargs)
    assert failure.value.response.status_code == 403


def run(socket, command: bytes, expected: bytes, timeout: float = 30) -> bytes:
    """Type `command` and read the console until `expected` appears (typing it again every few
    seconds: the shell on ttyS0 may still be starting right after the boot)."""
    seen = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        socket.send(command)
        resend = min(deadline, time.monotonic() + 5)
        while (remaining := resend - time.monotonic()) > 0:
            try:
                frame = socket.recv(timeout=remaining)
            except TimeoutError:
                break
            assert isinstance(frame, bytes), "console data comes in binary frames"
            seen += frame
            if expected in seen:
                return seen
    raise AssertionError(f"{expected!r} not seen in {seen[-500:]!r}")


@dataclass
class Closed:
    code: int
    reason: str  # from the server's last text frame (daphne sends no reason in the close frame)
    data: list[bytes]  # console data received before the close


def closed_by_server(socket, timeout: float) -> Closed:
    """Read until the server closes the socket."""
    frames = []
    with pytest.raises(ConnectionClosed) as closed:
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            frames.append(socket.recv(timeout=remaining))
        raise AssertionError("the server did not close the socket")
    code = closed.value.rcvd.code
    data = [frame for frame in frames if isinstance(frame, bytes)]
    notices = [json.loads(frame) for frame in frames if isinstance(frame, str)]
    if not notices:
        return Closed(code, "", data)
    assert len(notices) == 1 and isinstance(frames[-1], str), "one text frame, the last one"
    assert notices[0]["type"] == "close" and notices[0]["code"] == code
    return Closed(code, notices[0]["reason"], data)


def test_a_websocket_client_gets_the_guests_serial_console(panel, booted_guest, alice):
    running_guest = booted_guest
    cookie = session_cookie(alice)
    with open_serial(panel, running_guest.pk, ticket_for(running_guest, alice, cookie), cookie) as socket:
        assert socket.subprotocol == "binary"
        assert b"serial-42" in run(socket, b"echo serial-$((40+2))\r", b"serial-42")
    closed = wait_for(lambda: AuditEvent.objects.filter(verb="console.serial.close", actor=alice).first(), 5, "close")
    assert closed.detail["bytes_in"] >= len(b"echo serial-$((40+2))\r")
    assert closed.detail["bytes_out"] >= len(b"serial-42")
    assert "seconds" in closed.detail
    assert AuditEvent.objects.filter(verb="console.serial.open", actor=alice, client_address="127.0.0.1").exists()
    assert AuditEvent.objects.filter(verb="console.serial.ticket", actor=alice).exists()
    # Closing the socket released the console: the next session gets it.
    with open_serial(panel, running_guest.pk, ticket_for(running_guest, alice, cookie), cookie) as socket:
        run(socket, b"echo again-$((6*7))\r", b"again-42")


def test_a_replayed_ticket_is_refused(panel, running_guest, alice):
    cookie = session_cookie(alice)
    ticket = ticket_for(running_guest, alice, cookie)
    with open_serial(panel, running_guest.pk, ticket, cookie) as socket:
        assert socket.subprotocol == "binary"
    refused(panel, running_guest.pk, ticket, cookie)


def test_a_ticket_for_another_vm_is_refused_and_spent(panel, running_guest, alice, make_guest, operator):
    other = make_guest("other")
    grant_role(actor=operator, role="VMUser", scope=other.scope, user=alice)
    cookie = session_cookie(alice)
    ticket = ticket_for(running_guest, alice, cookie)
    refused(panel, other.pk, ticket, cookie)
    refused(panel, running_guest.pk, ticket, cookie)  # a ticket is spent by the first attempt
    assert not AuditEvent.objects.filter(verb="console.serial.open").exists()


def test_another_users_session_cannot_use_the_ticket(panel, running_guest, alice):
    bob = make_user("bob")
    grant_role(actor=None, role="VMUser", scope=running_guest.scope, user=bob)  # bob may, but not with alice's
    alice_cookie, bob_cookie = session_cookie(alice), session_cookie(bob)
    refused(panel, running_guest.pk, ticket_for(running_guest, alice, alice_cookie), bob_cookie)
    # A ticket issued without a session (an API client) is alice's too: bob's browser cannot present it.
    refused(panel, running_guest.pk, ticket_for(running_guest, alice, None), bob_cookie)
    # And without any session, nobody can.
    refused(panel, running_guest.pk, ticket_for(running_guest, alice, alice_cookie), None)


def test_no_ticket_or_a_forged_one_is_refused(panel, running_guest, alice):
    cookie = session_cookie(alice)
    refused(panel, running_guest.pk, None, cookie)
    refused(panel, running_guest.pk, "A" * 43, cookie)


def test_a_bad_origin_is_refused(panel, running_guest, alice):
    cookie = session_cookie(alice)
    refused(panel, running_guest.pk, ticket_for(running_guest, alice, cookie), cookie, origin="http://evil.example")


def test_a_vnc_ticket_does_not_open_the_serial_console(panel, running_guest, alice):
    cookie = session_cookie(alice)
    vnc = console.issue_ticket(running_guest, actor=alice, kind=ConsoleKind.VNC, session_key=cookie).ticket
    refused(panel, running_guest.pk, vnc, cookie)


def test_a_user_without_vm_console_gets_no_ticket(running_guest, alice, operator):
    from apps.accounts.models import Role

    auditor = make_user("carol")
    grant_role(actor=operator, role="Auditor", scope=running_guest.scope, user=auditor)
    with pytest.raises(AccessDenied):
        ticket_for(running_guest, auditor, session_cookie(auditor))
    # A view-only console cannot type, so it gets no serial console either.
    watcher = make_user("vera")
    role = Role.objects.create(name="Watcher", privileges=["vm.view", "vm.console.view"])
    grant_role(actor=operator, role=role, scope=running_guest.scope, user=watcher)
    with pytest.raises(ServiceError) as view_only:
        ticket_for(running_guest, watcher, session_cookie(watcher))
    assert view_only.value.status == 403


def test_a_second_concurrent_stream_gets_a_clear_refusal(panel, booted_guest, alice, operator):
    running_guest = booted_guest
    cookie = session_cookie(alice)
    with open_serial(panel, running_guest.pk, ticket_for(running_guest, alice, cookie), cookie) as first:
        run(first, b"echo first-$((40+2))\r", b"first-42")
        root_cookie = session_cookie(operator)
        with open_serial(panel, running_guest.pk, ticket_for(running_guest, operator, root_cookie), root_cookie) as s:
            closed = closed_by_server(s, timeout=10)
        assert closed.code == 4409
        assert closed.reason == "Another session is using this VM's serial console."
        assert closed.data == []
        # The first console is untouched.
        run(first, b"echo still-$((40+2))\r", b"still-42")
    refusal = AuditEvent.objects.get(verb="console.serial.open", actor=operator)
    assert refusal.result == "refused" and "Another session" in refusal.message


def test_an_open_serial_console_closes_within_5_seconds_of_revoking_the_grant(panel, running_guest, alice):
    cookie = session_cookie(alice)
    with open_serial(panel, running_guest.pk, ticket_for(running_guest, alice, cookie), cookie) as socket:
        assert socket.subprotocol == "binary"
        time.sleep(1)  # open a moment, through a watchdog check or so
        revoked = time.monotonic()
        Grant.objects.filter(user=alice).delete()
        closed = closed_by_server(socket, timeout=6)
        assert time.monotonic() - revoked < 5
    assert closed.code == 4403
    assert closed.reason == "console privilege revoked"
    audit = wait_for(lambda: AuditEvent.objects.filter(verb="console.serial.close", actor=alice).first(), 5, "audit")
    assert audit.message == "console privilege revoked"


def test_the_socket_closes_when_the_vm_stops(panel, lab, running_guest, alice):
    cookie = session_cookie(alice)
    with open_serial(panel, running_guest.pk, ticket_for(running_guest, alice, cookie), cookie) as socket:
        assert socket.subprotocol == "binary"
        lab.virsh(1, "destroy", running_guest.name)
        closed = closed_by_server(socket, timeout=10)
    assert closed.code == 4410
    assert wait_for(lambda: AuditEvent.objects.filter(verb="console.serial.close", actor=alice).first(), 5, "audit")
