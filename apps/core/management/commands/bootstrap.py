"""`make run`'s setup step: admin account, hosts, demo VM. Idempotent and quick on a second run."""

import os
import secrets
import subprocess
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.accounts.models import User
from apps.core.errors import ServiceError
from apps.hosts import services as host_services
from apps.hosts.inventory import reconcile_host
from apps.hosts.models import Host
from apps.vms import services as vm_services
from kvmpanel.virt import storage
from kvmpanel.virt.errors import HypervisorError

LAB_SCRIPT = settings.BASE_DIR / "scripts" / "lab" / "lab.sh"


def lab_uri(number: int) -> str:
    result = subprocess.run(["bash", str(LAB_SCRIPT), "uri", str(number)], check=True, capture_output=True, text=True)
    return result.stdout.strip()


class Command(BaseCommand):
    help = "Create the admin account, register the hosts and start the demo VM (idempotent)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--no-demo", action="store_true", help="Do not create or start the demo VM.")

    def handle(self, *args, no_demo: bool = False, **options) -> None:
        admin, password = self._admin()
        hosts = self._hosts(admin)
        for host in hosts:
            try:
                reconcile_host(host)
            except HypervisorError as error:
                self.stderr.write(f"host {host.name}: {error}")
        if not no_demo:
            self._demo(hosts[0], admin)
        password_file = settings.VAR_DIR / "admin-password"
        if password:
            self.stdout.write(f"login: admin / {password}   (also in {password_file}, mode 0600)")
        else:
            self.stdout.write(f"login: admin (password in {password_file})")

    def _admin(self) -> tuple[User, str]:
        admin = User.objects.filter(username="admin").first()
        if admin is not None:
            return admin, ""
        password = secrets.token_urlsafe(12)
        admin = User.objects.create_superuser("admin", email="", password=password)
        path = Path(settings.VAR_DIR) / "admin-password"
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(password + "\n")
        return admin, password

    def _hosts(self, admin: User) -> list[Host]:
        real_uri = os.environ.get("KVMPANEL_HOST_URI", "").strip()
        wanted = [("local", real_uri)] if real_uri else [(f"lab{n}", lab_uri(n)) for n in (1, 2)]
        hosts = []
        for name, uri in wanted:
            host = Host.objects.filter(uri=uri).first()
            try:
                if host is None:
                    host = host_services.add_host(actor=admin, name=name, uri=uri)
                else:
                    host_services.refresh_host(host)
            except ServiceError as error:
                if host is None:
                    raise CommandError(f"Cannot register {uri}: {error}") from error
                self.stderr.write(f"host {name}: {error}")
            hosts.append(host)
        return hosts

    def _demo(self, host: Host, admin: User) -> None:
        iso_pool, network = "iso", "lab-iso"
        if os.environ.get("KVMPANEL_HOST_URI"):
            # A real host: our own ISO pool over var/lab/images; no network is created or used.
            iso_pool, network = "kvmpanel-lab-iso", ""
            storage.ensure_dir_pool(host.uri, iso_pool, str(settings.VAR_DIR / "lab" / "images"))
        networks = {n["name"] for n in host.networks}
        try:
            vm = vm_services.ensure_demo_vm(
                host,
                actor=admin,
                iso_pool=iso_pool,
                iso_name="labos-live.iso",
                network=network if network in networks else "",
            )
        except ServiceError as error:
            raise CommandError(f"Demo VM: {error}") from error
        self.stdout.write(f"demo VM: {vm.name} on {host.name} is {vm.get_state_display()}")
