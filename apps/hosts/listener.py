"""The inventory listener: libvirt lifecycle events per host plus a periodic batched reconcile.

Threads: libvirt's event loop (kvmpanel.virt) calls `_on_event`, which only queues the event; this
listener's own thread does all database work. Each pass it
  - re-reads the host list (hosts added in the panel are picked up without a restart),
  - (re)subscribes to hosts whose connection is new or came back, reconciling them at once,
  - marks hosts whose connection broke as unreachable (the pool retries them with backoff),
  - applies queued events (one `get_domain` per event), and
  - reconciles every host every KVMPANEL_RECONCILE_SECONDS.
"""

import logging
import queue
import threading
import time

from django.conf import settings
from django.db import DatabaseError, close_old_connections

from apps.core.errors import ServiceError
from apps.hosts.inventory import reconcile_host, sync_domain
from apps.hosts.models import Host
from apps.hosts.services import mark_host_unreachable, refresh_host
from kvmpanel.virt import events
from kvmpanel.virt.errors import HypervisorError

log = logging.getLogger(__name__)


class InventoryListener:
    def __init__(self, *, reconcile_seconds: float | None = None, tick: float = 0.2) -> None:
        self.reconcile_seconds = reconcile_seconds or settings.KVMPANEL_RECONCILE_SECONDS
        self.tick = tick
        self.events: queue.Queue[events.LifecycleEvent] = queue.Queue()
        self.subscriptions: dict[str, events.Subscription] = {}  # by host URI
        self.stop = threading.Event()
        self._next_reconcile = 0.0

    def _on_event(self, event: events.LifecycleEvent) -> None:
        self.events.put(event)

    def run(self) -> None:
        log.info("inventory listener started (reconcile every %ss)", self.reconcile_seconds)
        while not self.stop.is_set():
            try:
                self.step()
            except Exception:
                # One bad pass (a host deleted mid-event, a database hiccup) must not stop the
                # listener: log it, pause briefly, and go on with a fresh database connection.
                log.exception("inventory pass failed")
                self.stop.wait(1.0)

    def step(self) -> None:
        close_old_connections()
        # test:/// hosts live in the memory of the process that opened them: another process (this
        # listener) would see its own private copy, never the truth, so they are not watched.
        hosts = {host.pk: host for host in Host.objects.exclude(uri__startswith="test:")}
        self._watch(hosts)
        if time.monotonic() >= self._next_reconcile:
            self._reconcile(hosts)
            self._next_reconcile = time.monotonic() + self.reconcile_seconds
        self._drain(hosts)

    def _watch(self, hosts: dict[int, Host]) -> None:
        # Subscriptions are keyed by URI: libvirt allows one identical registration per connection,
        # and a host row that is removed and added again must not leave a stale callback behind.
        wanted = {host.uri: host for host in hosts.values()}
        for uri in list(self.subscriptions):
            if uri not in wanted:
                events.unwatch(self.subscriptions.pop(uri))
        for uri, host in wanted.items():
            subscription = self.subscriptions.get(uri)
            if subscription is not None and events.subscription_alive(subscription):
                continue
            if subscription is not None:
                self.subscriptions.pop(uri)
                mark_host_unreachable(host, "connection lost")
            try:
                self.subscriptions[uri] = events.watch_lifecycle(uri, self._on_event)
            except HypervisorError as error:
                log.warning("cannot watch %s: %s", host.name, error)
                mark_host_unreachable(host, error.message)
                continue
            log.info("watching %s (%s)", host.name, host.uri)
            try:
                refresh_host(host)
                reconcile_host(host)
            except (HypervisorError, ServiceError) as error:
                log.warning("reconcile of %s failed: %s", host.name, error)

    def _reconcile(self, hosts: dict[int, Host]) -> None:
        for host in hosts.values():
            if host.uri not in self.subscriptions:
                continue  # unreachable: _watch retries it with the pool's backoff
            try:
                reconcile_host(host)
            except HypervisorError as error:
                log.warning("reconcile of %s failed: %s", host.name, error)

    def _drain(self, hosts: dict[int, Host]) -> None:
        by_uri = {host.uri: host for host in hosts.values()}
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline and not self.stop.is_set():
            try:
                event = self.events.get(timeout=self.tick)
            except queue.Empty:
                continue
            host = by_uri.get(event.uri)
            if host is None:
                continue
            try:
                sync_domain(host, event.uuid)
            except HypervisorError as error:
                log.warning("event %s for %s on %s: %s", event.event, event.name, host.name, error)
            except DatabaseError:
                log.warning("event %s for %s on %s not applied", event.event, event.name, host.name, exc_info=True)
