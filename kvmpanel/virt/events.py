"""Domain lifecycle events, delivered on the libvirt event-loop thread.

`watch_lifecycle` registers a callback on the pooled connection. The callback runs on the event
loop thread and must not touch the database: the inventory listener hands each event to its own
thread through a queue.
"""

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import libvirt

from kvmpanel.virt.connection import call, ensure_event_loop, pool

_EVENT_NAMES = {
    libvirt.VIR_DOMAIN_EVENT_DEFINED: "defined",
    libvirt.VIR_DOMAIN_EVENT_UNDEFINED: "undefined",
    libvirt.VIR_DOMAIN_EVENT_STARTED: "started",
    libvirt.VIR_DOMAIN_EVENT_SUSPENDED: "suspended",
    libvirt.VIR_DOMAIN_EVENT_RESUMED: "resumed",
    libvirt.VIR_DOMAIN_EVENT_STOPPED: "stopped",
    libvirt.VIR_DOMAIN_EVENT_SHUTDOWN: "shutdown",
    libvirt.VIR_DOMAIN_EVENT_PMSUSPENDED: "pmsuspended",
    libvirt.VIR_DOMAIN_EVENT_CRASHED: "crashed",
}


@dataclass(frozen=True)
class LifecycleEvent:
    uri: str
    uuid: str
    name: str
    event: str


@dataclass(frozen=True)
class Subscription:
    uri: str
    callback_id: int
    connection_id: int


def watch_lifecycle(uri: str, handler: Callable[[LifecycleEvent], None]) -> Subscription:
    """Deliver the host's domain lifecycle events to `handler`. One subscription per URI and
    connection: libvirt refuses a second identical registration ("callback already tracked")."""
    ensure_event_loop()

    def on_event(_conn, dom, event, _detail, _opaque) -> None:
        handler(LifecycleEvent(uri=uri, uuid=dom.UUIDString(), name=dom.name(), event=_EVENT_NAMES.get(event, "?")))

    def run(conn: libvirt.virConnect) -> Subscription:
        callback_id = conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, on_event, None)
        return Subscription(uri=uri, callback_id=callback_id, connection_id=id(conn))

    return call(uri, run)


def subscription_alive(subscription: Subscription) -> bool:
    """False once the connection the subscription was made on is gone (events stop with it)."""
    if not pool.is_connected(subscription.uri):
        return False
    return id(pool.get_cached(subscription.uri)) == subscription.connection_id


def unwatch(subscription: Subscription) -> None:
    """Stop the events of a subscription (a no-op when its connection is already gone)."""
    conn = pool.get_cached(subscription.uri)
    if conn is None or id(conn) != subscription.connection_id:
        return
    with contextlib.suppress(libvirt.libvirtError):
        conn.domainEventDeregisterAny(subscription.callback_id)
