"""`make run`'s setup step: admin account, hosts, demo VM. Idempotent and quick on a second run."""

import os
import secrets
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.accounts.models import User
from apps.core.errors import ServiceError
from apps.hosts import services as host_services
from apps.hosts.inventory import reconcile_host
from apps.hosts.lab import lab_path_map, lab_uri
from apps.hosts.models import Host
from apps.vms import services as vm_services
from kvmpanel.virt import storage
from kvmpanel.virt.errors import HypervisorError


class Command(BaseCommand):
    help = "Create the admin account, register the hosts and start the demo VM (idempotent)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--no-demo", action="store_true", help="Do not create or start the demo VM.")

    def handle(self, *args, no_demo: bool = False, **options) -> None:
        admin, created = self._admin()
        hosts = self._hosts(admin)
        for host in hosts:
            try:
                reconcile_host(host)
            except HypervisorError as error:
                self.stderr.write(f"host {host.name}: {error}")
        if not no_demo:
            self._demo(hosts[0], admin)
        if created:
            self.stdout.write(f"admin account created; its password is in {settings.VAR_DIR / 'admin-password'} (0600)")

    def _admin(self) -> tuple[User, bool]:
        admin = User.objects.filter(username="admin").first()
        if admin is not None:
            path = Path(settings.VAR_DIR) / "admin-password"
            if path.exists() and not admin.check_password(path.read_text().strip()):
                # make run prints that file: say so rather than print a login that fails.
                self.stderr.write(
                    f"the admin password was changed since {path} was written; "
                    "set a new one with: .venv/bin/python manage.py changepassword admin"
                )
            return admin, False
        password = secrets.token_urlsafe(12)
        admin = User.objects.create_superuser("admin", email="", password=password)
        path = Path(settings.VAR_DIR) / "admin-password"
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(password + "\n")
        return admin, True

    def _hosts(self, admin: User) -> list[Host]:
        real_uri = os.environ.get("KVMPANEL_HOST_URI", "").strip()
        wanted = [("local", real_uri, {})] if real_uri else [(f"lab{n}", lab_uri(n), lab_path_map(n)) for n in (1, 2)]
        hosts = []
        for name, uri, path_map in wanted:
            host = Host.objects.filter(uri=uri).first()
            try:
                if host is None:
                    host = host_services.add_host(actor=admin, name=name, uri=uri, path_map=path_map)
                else:
                    host_services.refresh_host(host)
            except ServiceError as error:
                if host is None:
                    raise CommandError(f"Cannot register {uri}: {error}") from error
                self.stderr.write(f"host {name}: {error}")
            hosts.append(host)
        return hosts

    def _demo(self, host: Host, admin: User) -> None:
        iso_pool, disk_pool, network = "iso", "default", "lab-iso"
        try:
            if os.environ.get("KVMPANEL_HOST_URI"):
                # A real host: pools over our own directories (or the host's pools already there);
                # no network is created or used.
                iso_pool = storage.ensure_dir_pool(
                    host.uri, "kvmpanel-lab-iso", str(settings.VAR_DIR / "lab" / "images")
                )
                images = settings.VAR_DIR / "images"
                images.mkdir(parents=True, exist_ok=True)
                disk_pool = storage.ensure_dir_pool(host.uri, "kvmpanel-images", str(images))
                network = ""
            networks = {n["name"] for n in host.networks}
            vm = vm_services.ensure_demo_vm(
                host,
                actor=admin,
                iso_pool=iso_pool,
                iso_name="labos-live.iso",
                disk_pool=disk_pool,
                network=network if network in networks else "",
            )
        except (ServiceError, HypervisorError) as error:
            raise CommandError(f"Demo VM on {host.name}: {error}") from error
        self.stdout.write(f"demo VM: {vm.name} on {host.name} is {vm.get_state_display()}")
