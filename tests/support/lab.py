"""Fixtures for tests on the lab hypervisors: a registered lab host and tiny guests on it (a pytest plugin)."""

import contextlib
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from apps.hosts import services as host_services
from apps.hosts.lab import lab_path_map
from apps.vms import services as vm_services
from apps.vms.models import VirtualMachine
from kvmpanel.virt import domain, storage
from kvmpanel.virt import xml as domain_xml
from kvmpanel.virt.connection import pool
from kvmpanel.virt.errors import HypervisorError
from tests.conftest import ROOT, make_user

GUEST_PREFIX = "t-"


def serial_log(host_number: int, name: str) -> Path:
    return ROOT / "var" / "lab" / f"host{host_number}" / "log" / "qemu" / f"{name}-serial.log"


def wait_for(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def boots_seen(host_number: int, name: str) -> int:
    path = serial_log(host_number, name)
    return path.read_bytes().count(b"boot finished") if path.exists() else 0


@pytest.fixture
def operator(transactional_db):
    return make_user("root", is_superuser=True, is_staff=True)


def _remove_test_guests(host) -> None:
    """Remove this run's guests: those defined through this run's panel (they have an owner; the
    inventory also lists other runs' guests, ownerless). Other test runs may share the lab host at
    the same time (each with its own KVMPANEL_TEST_DB), and their guests are theirs to remove."""
    ours = set(VirtualMachine.objects.filter(host=host, owner__isnull=False).values_list("uuid", flat=True))
    for summary in domain.list_domains(host.uri, with_addresses=False):
        if not summary.name.startswith(GUEST_PREFIX) or summary.uuid not in ours:
            continue
        uri = host.uri
        with contextlib.suppress(HypervisorError):
            domain.force_off(uri, summary.uuid)
        with contextlib.suppress(HypervisorError):
            domain.undefine(uri, summary.uuid, remove_storage=True)


@pytest.fixture
def lab_host(lab, operator):
    """Lab host 1, registered through the real add-host path (connect + probe)."""
    host = host_services.add_host(actor=operator, name="lab1", uri=lab.uris[1], path_map=lab_path_map(1))
    yield host
    _remove_test_guests(host)
    pool.drop(host.uri)


@pytest.fixture
def make_guest(lab_host, operator):
    """Define (not start) a tiny live-ISO guest through the panel's define service."""

    def make(prefix: str = "vm") -> VirtualMachine:
        name = f"{GUEST_PREFIX}{prefix}-{uuid.uuid4().hex[:6]}"
        iso = storage.find_volume_in_pool(lab_host.uri, "iso", "labos-live.iso")
        disk = storage.create_volume(lab_host.uri, "default", f"{name}.qcow2", capacity_bytes=32 << 20)
        spec = vm_services.tiny_guest_spec(name, disk_path=disk, iso_path=iso, network="lab-iso")
        serial_log(1, name).unlink(missing_ok=True)
        return vm_services.define_vm(lab_host, domain_xml.build_domain_xml(spec), actor=operator)

    return make
