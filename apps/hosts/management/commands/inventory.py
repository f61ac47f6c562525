import signal

from django.core.management.base import BaseCommand

from apps.hosts.listener import InventoryListener


class Command(BaseCommand):
    help = "Keep the VM inventory in step with every host (libvirt events + periodic reconcile)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--reconcile-seconds", type=float, default=None)

    def handle(self, *args, reconcile_seconds: float | None = None, **options) -> None:
        listener = InventoryListener(reconcile_seconds=reconcile_seconds)
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: listener.stop.set())
        listener.run()
