"""The console proxy against a real guest on the lab: what gets the RFB banner, what is refused.

A refusal must come before the WebSocket upgrade, so not one byte of VNC data reaches the client.
"""

import contextlib
import struct
import time

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from apps.accounts.models import Grant
from apps.accounts.services import grant_role
from apps.audit.models import AuditEvent
from apps.console import services as console
from apps.core.errors import AccessDenied, ServiceError
from apps.vms import services as vm_services
from tests.conftest import make_user, session_cookie
from tests.support.lab import wait_for

pytestmark = pytest.mark.lab
PANEL_ORIGIN = "http://127.0.0.1:8000"


def open_console(
    proxy, ticket: str | None, *, origin: str | None = PANEL_ORIGIN, cookie: str | None = None, path: str = "/"
):
    protocols = ["binary"] + ([console.TICKET_PROTOCOL_PREFIX + ticket] if ticket else [])
    headers = {"Cookie": f"sessionid={cookie}"} if cookie else {}
    return connect(
        f"ws://127.0.0.1:{proxy.port}{path}",
        subprotocols=protocols,
        origin=origin,
        additional_headers=headers,
        open_timeout=10,
    )


def banner(proxy, ticket, **kwargs) -> bytes:
    with open_console(proxy, ticket, **kwargs) as socket:
        return socket.recv(timeout=10)


def desktop_name(proxy, ticket) -> str:
    """Speak RFB 3.8 far enough to read the ServerInit desktop name (QEMU names it after the VM)."""
    with open_console(proxy, ticket) as socket:
        assert socket.recv(timeout=10) == b"RFB 003.008\n"
        socket.send(b"RFB 003.008\n")
        types = socket.recv(timeout=10)
        assert 1 in types[1:], "QEMU offers security type None on a unix socket"
        socket.send(b"\x01")
        assert socket.recv(timeout=10) == b"\x00\x00\x00\x00"
        socket.send(b"\x01")  # shared
        init = b""
        while len(init) < 24 or len(init) < 24 + struct.unpack(">I", init[20:24])[0]:
            init += socket.recv(timeout=10)
        return init[24 : 24 + struct.unpack(">I", init[20:24])[0]].decode()


def refused(proxy, ticket, **kwargs) -> None:
    with pytest.raises(InvalidStatus) as failure:
        open_console(proxy, ticket, **kwargs)
    assert failure.value.response.status_code == 403


@pytest.fixture
def running_guest(make_guest, operator):
    return vm_services.run_lifecycle(make_guest("con"), "start", actor=operator)


@pytest.fixture
def alice(running_guest, operator):
    user = make_user("alice")
    grant_role(actor=operator, role="VMUser", scope=running_guest.scope, user=user)
    return user


def ticket_for(vm, user, *, session: str | None = None) -> str:
    return console.issue_ticket(vm, actor=user, session_key=session).ticket


def test_a_valid_ticket_gets_the_rfb_banner_and_the_console_is_audited(console_proxy, running_guest, alice):
    assert banner(console_proxy, ticket_for(running_guest, alice)) == b"RFB 003.008\n"
    assert AuditEvent.objects.filter(verb="console.vnc.ticket", actor=alice).exists()
    closed = wait_for(lambda: AuditEvent.objects.filter(verb="console.vnc.close", actor=alice).first(), 5, "close")
    assert AuditEvent.objects.filter(verb="console.vnc.open", actor=alice, client_address="127.0.0.1").exists()
    assert "seconds" in closed.detail and closed.detail["bytes_out"] >= 12


def test_the_ticket_decides_the_vm_whatever_the_url_says(console_proxy, running_guest, alice, make_guest, operator):
    other = vm_services.run_lifecycle(make_guest("other"), "start", actor=operator)
    ticket = ticket_for(running_guest, alice)
    assert desktop_name(console_proxy, ticket) == f"QEMU ({running_guest.name})"
    ticket = ticket_for(running_guest, alice)
    path = f"/?token={other.pk}&vm={other.pk}&path=/var/lib/libvirt/qemu/x.sock"
    with open_console(console_proxy, ticket, path=path) as socket:
        assert socket.recv(timeout=10) == b"RFB 003.008\n"
    assert AuditEvent.objects.filter(verb="console.vnc.open", target_id=str(other.pk)).count() == 0


def test_a_replayed_ticket_is_refused(console_proxy, running_guest, alice):
    ticket = ticket_for(running_guest, alice)
    assert banner(console_proxy, ticket) == b"RFB 003.008\n"
    refused(console_proxy, ticket)


def test_an_expired_ticket_is_refused(console_proxy, running_guest, alice, settings):
    settings.KVMPANEL_CONSOLE_TICKET_SECONDS = 1
    ticket = ticket_for(running_guest, alice)
    time.sleep(1.5)
    refused(console_proxy, ticket)


def test_a_forged_or_missing_ticket_is_refused(console_proxy, running_guest, alice):
    refused(console_proxy, "A" * 43)
    refused(console_proxy, None)


def test_a_bad_origin_is_refused(console_proxy, running_guest, alice):
    refused(console_proxy, ticket_for(running_guest, alice), origin="http://evil.example")


def test_another_users_browser_cannot_use_the_ticket(console_proxy, running_guest, alice):
    bob = make_user("bob")
    # Issued to alice's session: bob's session cookie (or none at all) does not match.
    alice_session = session_cookie(alice)
    refused(console_proxy, ticket_for(running_guest, alice, session=alice_session), cookie=session_cookie(bob))
    refused(console_proxy, ticket_for(running_guest, alice, session=alice_session))
    assert banner(console_proxy, ticket_for(running_guest, alice, session=alice_session), cookie=alice_session)
    # Issued to an API client (no session): a browser carrying bob's session cannot present it.
    refused(console_proxy, ticket_for(running_guest, alice), cookie=session_cookie(bob))


def test_a_user_without_vm_console_gets_no_ticket(running_guest, alice):
    viewer = make_user("carol")
    grant_role(actor=None, role="Auditor", scope=running_guest.scope, user=viewer)
    with pytest.raises(AccessDenied):
        console.issue_ticket(running_guest, actor=viewer)


def test_a_ticket_stops_working_when_the_privilege_is_revoked_before_connecting(console_proxy, running_guest, alice):
    ticket = ticket_for(running_guest, alice)
    Grant.objects.filter(user=alice).delete()
    refused(console_proxy, ticket)


def test_a_disabled_user_cannot_connect(console_proxy, running_guest, alice):
    ticket = ticket_for(running_guest, alice)
    alice.is_active = False
    alice.save()
    refused(console_proxy, ticket)


def test_a_ticket_for_an_endpoint_that_changed_is_refused(console_proxy, running_guest, alice, operator):
    ticket = ticket_for(running_guest, alice)
    vm = vm_services.run_lifecycle(running_guest, "force-off", actor=operator)
    vm_services.run_lifecycle(vm, "start", actor=operator)  # a new QEMU, a new socket
    refused(console_proxy, ticket)


def test_a_stopped_vm_has_no_console(running_guest, alice, operator):
    vm = vm_services.run_lifecycle(running_guest, "force-off", actor=operator)
    with pytest.raises(ServiceError, match="not running"):
        console.issue_ticket(vm, actor=alice)


def test_an_open_console_closes_within_5_seconds_of_revoking_the_grant(console_proxy, running_guest, alice):
    with open_console(console_proxy, ticket_for(running_guest, alice)) as socket:
        assert socket.recv(timeout=10) == b"RFB 003.008\n"
        revoked = time.monotonic()
        Grant.objects.filter(user=alice).delete()
        with pytest.raises(ConnectionClosed):
            while True:
                socket.recv(timeout=6)
        assert time.monotonic() - revoked < 5
    reason = wait_for(lambda: AuditEvent.objects.filter(verb="console.vnc.close", actor=alice).first(), 5, "audit")
    assert reason.message == "console privilege revoked"


def test_an_open_console_closes_when_the_user_is_disabled(console_proxy, running_guest, alice):
    with open_console(console_proxy, ticket_for(running_guest, alice)) as socket:
        assert socket.recv(timeout=10) == b"RFB 003.008\n"
        alice.is_active = False
        alice.save()
        with pytest.raises(ConnectionClosed):
            while True:
                socket.recv(timeout=6)


def test_a_view_only_console_drops_keyboard_input(console_proxy, running_guest, operator):
    from apps.accounts.models import Role

    role = Role.objects.create(name="Watcher", privileges=["vm.view", "vm.console.view"])
    viewer = make_user("vera")
    grant_role(actor=operator, role=role, scope=running_guest.scope, user=viewer)
    issued = console.issue_ticket(running_guest, actor=viewer)
    assert issued.view_only
    assert desktop_name(console_proxy, issued.ticket) == f"QEMU ({running_guest.name})"


def test_console_tickets_are_rate_limited(running_guest, alice, settings):
    settings.KVMPANEL_CONSOLE_TICKETS_PER_MINUTE = 2
    for _ in range(2):
        ticket_for(running_guest, alice)
    with pytest.raises(ServiceError) as limited:
        ticket_for(running_guest, alice)
    assert limited.value.status == 429


def test_the_proxy_serves_no_web_pages(console_proxy):
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", console_proxy.port, timeout=5)
    for path in ("/", "/vnc.html", "/core/rfb.js", "/../../etc/passwd"):
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        assert response.status == 405, path
    connection.close()


def test_an_oversized_client_message_closes_the_console(console_proxy, running_guest, alice):
    """A frame announcing more than the limit is refused from its header (close 1009), unbuffered."""
    import base64
    import os
    import socket

    ticket = ticket_for(running_guest, alice)
    raw = socket.create_connection(("127.0.0.1", console_proxy.port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    raw.sendall(
        (
            "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Origin: {PANEL_ORIGIN}\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Protocol: binary, {console.TICKET_PROTOCOL_PREFIX}{ticket}\r\n\r\n"
        ).encode()
    )
    received = b""
    while b"RFB 003.008" not in received:
        received += raw.recv(4096)
    raw.sendall(struct.pack(">BBQ", 0x82, 0x80 | 127, 2 << 20) + b"mask" + b"\0" * 4096)
    reply = raw.recv(4096)
    raw.close()
    assert reply[:1] == b"\x88"  # a close frame ...
    assert struct.unpack(">H", reply[2:4])[0] == 1009  # ... "message too big"


def test_open_consoles_are_capped_per_user_at_issue_and_at_connect(console_proxy, running_guest, alice, settings):
    limit = settings.KVMPANEL_CONSOLE_MAX_PER_USER
    tickets = [ticket_for(running_guest, alice) for _ in range(limit + 1)]  # fetched in a burst, none open yet
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(open_console(console_proxy, ticket)) for ticket in tickets[:limit]]
        for socket in sockets:
            assert socket.recv(timeout=10) == b"RFB 003.008\n"
        refused(console_proxy, tickets[limit])
        with pytest.raises(ServiceError) as capped:
            ticket_for(running_guest, alice)
        assert capped.value.status == 429
