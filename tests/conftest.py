"""Shared fixtures: personas, test:/// hosts, the lab hypervisors and a running panel.

Personas (Healthchecks-style): alice owns a VM (VMUser on it), bob has no grant at all, carol may
only look (a Viewer role on the host), oscar is an Operator on the host, and root is a superuser.
"""

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import translation

from apps.accounts.models import Role, User
from apps.accounts.services import grant_role
from apps.hosts.inventory import reconcile_host
from apps.hosts.models import Host
from apps.vms.models import VirtualMachine
from kvmpanel.virt.connection import pool
from tests.support.testnode import write_test_node

pytest_plugins = ["tests.support.lab", "tests.support.browser", "tests.support.worker", "tests.support.volumes"]

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
LAB = ROOT / "scripts" / "lab" / "lab.sh"
PASSWORD = "correct horse battery staple"
ARTIFACTS = ROOT / "test-results"


def make_user(username: str, **extra) -> User:
    return User.objects.create_user(username, password=PASSWORD, **extra)


@pytest.fixture(autouse=True)
def _reset_language():
    """A request can leave its user's language active in this thread; start each test in English."""
    yield
    translation.activate(settings.LANGUAGE_CODE)


@dataclass
class World:
    host: Host
    vm: VirtualMachine  # shut off, owned by alice
    running_vm: VirtualMachine
    alice: User
    bob: User
    carol: User
    oscar: User
    root: User


@pytest.fixture
def test_host(db, tmp_path) -> Host:
    """A test:/// host with four domains (two running), already in the inventory."""
    uri = write_test_node(tmp_path / "node.xml", vms=4, running=2)
    host = Host.objects.create(name="testhost", uri=uri)
    reconcile_host(host)
    host.refresh_from_db()
    yield host
    pool.drop(uri)


@pytest.fixture
def world(test_host) -> World:
    viewer, _ = Role.objects.get_or_create(name="Viewer", defaults={"privileges": ["vm.view", "host.view"]})
    alice, bob, carol, oscar = (make_user(name) for name in ("alice", "bob", "carol", "oscar"))
    root = make_user("root", is_superuser=True, is_staff=True)
    vms = {vm.name: vm for vm in test_host.vms.all()}
    shut_off = vms["vm0002"]
    grant_role(actor=root, role="VMUser", scope=shut_off.scope, user=alice)
    grant_role(actor=root, role="VMUser", scope=vms["vm0000"].scope, user=alice)
    grant_role(actor=root, role=viewer, scope=test_host.scope, user=carol)
    grant_role(actor=root, role="Operator", scope=test_host.scope, user=oscar)
    return World(test_host, shut_off, vms["vm0000"], alice, bob, carol, oscar, root)


# ---- the lab: real libvirtd + QEMU (TCG) ----


@dataclass(frozen=True)
class Lab:
    uris: dict[int, str]

    def virsh(self, host: int, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["virsh", "-c", self.uris[host], *args], capture_output=True, text=True, check=check)

    def run(self, *args: str) -> str:
        return subprocess.run(["bash", str(LAB), *args], capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope="session")
def lab() -> Lab:
    subprocess.run(["bash", str(LAB), "up"], check=True, capture_output=True)
    uris = {
        n: subprocess.run(["bash", str(LAB), "uri", str(n)], check=True, capture_output=True, text=True).stdout.strip()
        for n in (1, 2)
    }
    return Lab(uris)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


@dataclass(frozen=True)
class Panel:
    url: str
    port: int


@dataclass(frozen=True)
class Ports:
    panel: int
    console: int


@pytest.fixture(scope="session")
def ports() -> Ports:
    """The panel's and the console proxy's ports, chosen together: each must know the other's."""
    return Ports(panel=_free_port(), console=_free_port())


def _server_env(ports: Ports) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PYTHONUNBUFFERED": "1",
        "KVMPANEL_CONSOLE_URL": f"ws://127.0.0.1:{ports.console}/",
        "KVMPANEL_CONSOLE_ALLOWED_ORIGINS": f"http://127.0.0.1:{ports.panel},http://127.0.0.1:8000",
    }


def _start(argv: list[str], log, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def _stop(*processes: subprocess.Popen) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="session")
def panel(django_db_setup, django_db_blocker, ports) -> Panel:
    """daphne and the inventory listener as real processes, on the test database and Redis."""
    env = _server_env(ports)
    ARTIFACTS.mkdir(exist_ok=True)
    with open(ARTIFACTS / "panel.log", "w") as log:
        web = _start(
            [str(VENV_BIN / "daphne"), "-b", "127.0.0.1", "-p", str(ports.panel), "kvmpanel.asgi:application"], log, env
        )
        listener = _start([sys.executable, "manage.py", "inventory", "--reconcile-seconds", "5"], log, env)
        try:
            _wait_for_port(ports.panel, web)
            yield Panel(url=f"http://127.0.0.1:{ports.panel}", port=ports.panel)
        finally:
            _stop(web, listener)


@dataclass(frozen=True)
class ConsoleProxyProcess:
    url: str
    port: int


@pytest.fixture(scope="session")
def console_proxy(django_db_setup, django_db_blocker, ports) -> ConsoleProxyProcess:
    """`manage.py console_proxy` as a real process on the test database and Redis."""
    ARTIFACTS.mkdir(exist_ok=True)
    with open(ARTIFACTS / "console-proxy.log", "w") as log:
        process = _start(
            [sys.executable, "manage.py", "console_proxy", "--listen", f"127.0.0.1:{ports.console}"],
            log,
            _server_env(ports),
        )
        try:
            _wait_for_port(ports.console, process)
            yield ConsoleProxyProcess(url=f"ws://127.0.0.1:{ports.console}/", port=ports.console)
        finally:
            _stop(process)


def session_cookie(user: User) -> str:
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value
