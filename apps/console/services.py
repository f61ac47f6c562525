"""Console tickets: issued through the one gate, redeemed once by the proxy, re-checked while open.

A ticket is 256 random bits, stored hashed in Redis for at most 60 s, and bound to the user, the
VM, its host, the console endpoint and (for browser sessions) the session. The proxy redeems it
atomically, re-reads the endpoint from the hypervisor (the VM may have restarted elsewhere), and
then re-checks every few seconds that the user may still use it.
"""

import hashlib
import secrets
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils.translation import gettext as _

from apps.accounts.permissions import has_privilege
from apps.audit.choices import AuditResult
from apps.audit.services import record_event
from apps.console import store
from apps.console.choices import ConsoleKind
from apps.console.endpoints import Endpoint, parse_endpoint
from apps.core.errors import AccessDenied, ServiceError
from apps.vms.choices import PowerState
from apps.vms.models import VirtualMachine
from kvmpanel.virt import domain
from kvmpanel.virt.errors import HypervisorError

TICKET_PROTOCOL_PREFIX = "kvmpanel.ticket."


@dataclass(frozen=True)
class IssuedTicket:
    ticket: str
    url: str
    expires: datetime
    view_only: bool


@dataclass(frozen=True)
class ConsoleGrant:
    """What a redeemed ticket allows: one user, one VM, one endpoint, from one session."""

    user_id: int
    vm_id: int
    host_id: int
    uuid: str
    kind: str
    endpoint: str  # the inventory's description, e.g. "vnc unix:/var/lib/libvirt/qemu/.../vnc.sock"
    view_only: bool
    session: str  # SHA-256 of the session key, or "" for API-token clients
    issued_at: float


def session_digest(session_key: str | None) -> str:
    return hashlib.sha256(session_key.encode()).hexdigest() if session_key else ""


def console_privilege(user, vm: VirtualMachine) -> tuple[bool, bool]:
    """(may open the console, view only)."""
    if has_privilege(user, vm, "vm.console"):
        return True, False
    if has_privilege(user, vm, "vm.console.view"):
        return True, True
    return False, False


def issue_ticket(
    vm: VirtualMachine,
    *,
    actor,
    kind: str = ConsoleKind.VNC,
    session_key: str | None = None,
    client_address: str | None = None,
) -> IssuedTicket:
    allowed, view_only = console_privilege(actor, vm)
    if not allowed:
        raise AccessDenied()
    verb = f"console.{kind}.ticket"

    def refuse(message: str, status: int = 409) -> ServiceError:
        record_event(
            actor=actor,
            verb=verb,
            target=vm,
            result=AuditResult.REFUSED,
            message=message,
            client_address=client_address,
        )
        return ServiceError(message, status=status, code="console-refused")

    if kind == ConsoleKind.SERIAL and view_only:
        raise refuse(_("A view-only console cannot open the serial console, which takes input."), 403)
    if vm.missing or vm.state not in {PowerState.RUNNING, PowerState.PAUSED, PowerState.BLOCKED}:
        raise refuse(_("The VM is not running, so it has no console."))
    if kind == ConsoleKind.VNC and (parse_endpoint(vm.host, vm.console) is None):
        raise refuse(_("The VM has no VNC console the panel can reach."))
    if store.count_issued(actor.pk) > settings.KVMPANEL_CONSOLE_TICKETS_PER_MINUTE:
        raise refuse(_("Too many console requests; wait a minute."), 429)
    by_user, by_vm = store.open_counts(actor.pk, vm.pk)
    if by_user >= settings.KVMPANEL_CONSOLE_MAX_PER_USER:
        raise refuse(_("You already have %(count)d consoles open (the limit).") % {"count": by_user}, 429)
    if by_vm >= settings.KVMPANEL_CONSOLE_MAX_PER_VM:
        raise refuse(_("This VM already has %(count)d consoles open (the limit).") % {"count": by_vm}, 429)

    secret = secrets.token_urlsafe(32)
    ttl = settings.KVMPANEL_CONSOLE_TICKET_SECONDS
    grant = ConsoleGrant(
        user_id=actor.pk,
        vm_id=vm.pk,
        host_id=vm.host_id,
        uuid=vm.uuid,
        kind=kind,
        endpoint=vm.console,
        view_only=view_only,
        session=session_digest(session_key),
        issued_at=time.time(),
    )
    store.save_ticket(secret, asdict(grant), ttl)
    record_event(
        actor=actor, verb=verb, target=vm, client_address=client_address, detail={"view_only": view_only, "ttl": ttl}
    )
    url = settings.KVMPANEL_CONSOLE_URL if kind == ConsoleKind.VNC else f"/ws/vms/{vm.pk}/serial/"
    return IssuedTicket(
        ticket=secret, url=url, expires=datetime.fromtimestamp(time.time() + ttl, UTC), view_only=view_only
    )


def ticket_from_protocols(header: str | None) -> str | None:
    """The ticket rides in Sec-WebSocket-Protocol ("binary, kvmpanel.ticket.<secret>"), so it is
    never part of a URL and never lands in an access log."""
    for protocol in (header or "").split(","):
        protocol = protocol.strip()
        if protocol.startswith(TICKET_PROTOCOL_PREFIX):
            return protocol.removeprefix(TICKET_PROTOCOL_PREFIX)
    return None


class Refused(Exception):
    """A console connection is refused; the message is safe to log (it never holds the ticket)."""


def redeem(secret: str | None, *, kind: str, session_key: str | None) -> ConsoleGrant:
    """Redeem a ticket (once) and check it against the connection presenting it."""
    if not secret:
        raise Refused("no ticket")
    data = store.redeem_ticket(secret)
    if data is None:
        raise Refused("unknown, expired or already used ticket")
    grant = ConsoleGrant(**data)
    if grant.kind != kind:
        raise Refused("ticket for another kind of console")
    if grant.session and grant.session != session_digest(session_key):
        raise Refused("ticket presented from another session")
    if not grant.session and session_key and _session_user(session_key) not in {None, grant.user_id}:
        raise Refused("ticket presented by another user's browser")
    return grant


def _session_user(session_key: str) -> int | None:
    from django.contrib.sessions.backends.db import SessionStore

    user_id = SessionStore(session_key=session_key).get("_auth_user_id")
    return int(user_id) if user_id else None


def _checked(grant: ConsoleGrant) -> VirtualMachine:
    """The grant's VM if the user may still use its console; Refused with the reason otherwise."""
    user = get_user_model().objects.filter(pk=grant.user_id, is_active=True).first()
    if user is None:
        raise Refused("user disabled or deleted")
    vm = VirtualMachine.objects.select_related("host").filter(pk=grant.vm_id).first()
    if vm is None or vm.missing:
        raise Refused("VM deleted")
    if vm.host_id != grant.host_id:
        raise Refused("VM moved to another host")
    if vm.uuid != grant.uuid:
        raise Refused("VM replaced")
    allowed, view_only = console_privilege(user, vm)
    if not allowed or (view_only and not grant.view_only):
        raise Refused("console privilege revoked")
    return vm


def still_allowed(grant: ConsoleGrant) -> str | None:
    """None while the console may stay open, else why it must close (checked every few seconds)."""
    try:
        _checked(grant)
    except Refused as refused:
        return str(refused)
    return None


def current_state(grant: ConsoleGrant) -> tuple[VirtualMachine, Endpoint]:
    """Re-check a grant against the truth at connect time: the user, their privilege, the VM, and
    the endpoint read from the hypervisor, not the inventory (the VM may have restarted on another
    socket or port a moment ago). Raises Refused with the reason."""
    vm = _checked(grant)
    try:
        live = domain.get_domain(vm.host.uri, vm.uuid, with_addresses=False)
    except HypervisorError as error:
        raise Refused(f"hypervisor: {error.code}") from error
    described = live.console.describe() if live.console else ""
    if described != grant.endpoint:
        raise Refused("the VM's console endpoint changed")
    endpoint = parse_endpoint(vm.host, described)
    if endpoint is None or not endpoint.reachable:
        raise Refused("console endpoint not reachable")
    return vm, endpoint


def warm_up() -> None:
    """Run the connect path's queries once in the proxy's parent process: each forked connection
    then inherits compiled queries and loaded modules instead of paying for them (~20 ms each)."""
    from apps.accounts.models import User

    probe = ConsoleGrant(
        user_id=0,
        vm_id=0,
        host_id=0,
        uuid="",
        kind=ConsoleKind.VNC,
        endpoint="",
        view_only=False,
        session="",
        issued_at=0.0,
    )
    still_allowed(probe)  # stops at the user lookup (no user 0): the VM query is compiled next
    VirtualMachine.objects.select_related("host").filter(pk=0).first()
    has_privilege(User(pk=0, is_active=True), None, "vm.console", fresh=True)
    store.open_counts(0, 0)


def check_capacity(grant: ConsoleGrant) -> None:
    """The caps again at connect time: tickets fetched in a burst must not open more consoles."""
    by_user, by_vm = store.open_counts(grant.user_id, grant.vm_id)
    if by_user >= settings.KVMPANEL_CONSOLE_MAX_PER_USER or by_vm >= settings.KVMPANEL_CONSOLE_MAX_PER_VM:
        raise Refused("too many open consoles")


def serial_state(grant: ConsoleGrant) -> VirtualMachine:
    """Re-check a serial console grant at connect time: the user, their privilege, the VM (the same
    domain, still running). There is no endpoint to compare: the serial console is a libvirt stream
    the panel opens itself, on whatever host the VM is on now. Raises Refused with the reason."""
    if grant.kind != ConsoleKind.SERIAL or grant.view_only:
        raise Refused("not a serial console ticket")
    vm = _checked(grant)
    if vm.state not in {PowerState.RUNNING, PowerState.PAUSED, PowerState.BLOCKED}:
        raise Refused("VM not running")
    return vm


def record_refused(grant: ConsoleGrant, vm: VirtualMachine, client_address: str | None, message: str) -> None:
    """A console that passed every check but could not be opened (e.g. the serial console is busy)."""
    user = get_user_model().objects.filter(pk=grant.user_id).first()
    record_event(
        actor=user,
        verb=f"console.{grant.kind}.open",
        target=vm,
        result=AuditResult.REFUSED,
        message=message,
        client_address=client_address,
    )


def record_opened(grant: ConsoleGrant, vm: VirtualMachine, client_address: str | None) -> None:
    user = get_user_model().objects.get(pk=grant.user_id)
    record_event(
        actor=user,
        verb=f"console.{grant.kind}.open",
        target=vm,
        client_address=client_address,
        detail={"view_only": grant.view_only},
    )


def record_closed(
    grant: ConsoleGrant,
    client_address: str | None,
    *,
    seconds: float,
    reason: str,
    bytes_in: int = 0,
    bytes_out: int = 0,
) -> None:
    user = get_user_model().objects.filter(pk=grant.user_id).first()
    vm = VirtualMachine.objects.filter(pk=grant.vm_id).first()
    record_event(
        actor=user,
        verb=f"console.{grant.kind}.close",
        target=vm,
        client_address=client_address,
        message=reason,
        detail={"seconds": round(seconds, 1), "bytes_in": bytes_in, "bytes_out": bytes_out, "vm_id": grant.vm_id},
    )
