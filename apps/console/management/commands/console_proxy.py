from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import connections

from apps.console import services, store
from apps.console.proxy import ConsoleProxy


class Command(BaseCommand):
    help = "Run the console proxy (websockify with kvmpanel's tickets) on KVMPANEL_CONSOLE_LISTEN."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--listen", default=settings.KVMPANEL_CONSOLE_LISTEN, help="host:port")

    def handle(self, *args, listen: str, **options) -> None:
        host, _, port = listen.rpartition(":")
        services.warm_up()
        # Each connection is a forked child: none may inherit the parent's database, Redis or
        # libvirt connections (warm_up opened the first two).
        connections.close_all()
        store.forget_clients()
        proxy = ConsoleProxy(listen_host=host or "127.0.0.1", listen_port=int(port))
        self.stdout.write(f"console proxy listening on {listen}")
        proxy.start_server()
