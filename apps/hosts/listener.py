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
from django.db import close_old_connections

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
        self.subscriptions: dict[int, events.Subscription] = {}
        self.stop = threading.Event()
        self._next_reconcile = 0.0

    def _on_event(self, event: events.LifecycleEvent) -> None:
        self.events.put(event)

    def run(self) -> None:
        log.info("inventory listener started (reconcile every %ss)", self.reconcile_seconds)
        while not self.stop.is_set():
            close_old_connections()
            hosts = {host.pk: host for host in Host.objects.all()}
            self._watch(hosts)
            if time.monotonic() >= self._next_reconcile:
                self._reconcile(hosts)
                self._next_reconcile = time.monotonic() + self.reconcile_seconds
            self._drain(hosts)

    def _watch(self, hosts: dict[int, Host]) -> None:
        for host_id in list(self.subscriptions):
            if host_id not in hosts:
                self.subscriptions.pop(host_id)
        for host in hosts.values():
            subscription = self.subscriptions.get(host.pk)
            if subscription is not None and events.subscription_alive(subscription):
                continue
            if subscription is not None:
                self.subscriptions.pop(host.pk)
                mark_host_unreachable(host, "connection lost")
            try:
                self.subscriptions[host.pk] = events.watch_lifecycle(host.uri, self._on_event)
            except HypervisorError as error:
                mark_host_unreachable(host, error.message)
                continue
            log.info("watching %s (%s)", host.name, host.uri)
            try:
                refresh_host(host)
                reconcile_host(host)
            except (HypervisorError, ServiceError) as error:
                log.warning("reconcile of %s failed: %s", host.name, error)

    def _reconcile(self, hosts: dict[int, Host]) -> None:
        for host_id in self.subscriptions:
            host = hosts[host_id]
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
