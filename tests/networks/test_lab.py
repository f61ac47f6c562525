"""Virtual networks on lab host 1 (a real libvirtd with dnsmasq): an isolated network's whole life,
static DHCP hosts changed live and persistently, a tiny guest getting its static lease, and a
network a running guest uses refused for stop and delete. Only isolated networks are ever started
here (LAB.md); every network made is named t-net-* and removed again."""

import contextlib
import random
import uuid

import pytest

from apps.core.errors import ServiceError
from apps.networks import services
from apps.vms import services as vm_services
from kvmpanel.virt import domain, storage
from kvmpanel.virt import network as virt_network
from kvmpanel.virt import xml as domain_xml
from kvmpanel.virt.errors import HypervisorError
from tests.support.lab import GUEST_PREFIX, serial_log, wait_for

pytestmark = pytest.mark.lab


@pytest.fixture
def net(lab_host):
    """A fresh name and /24 (10.231.X.0, clear of lab-iso's 192.168.250.0/24) for one test network,
    and its removal afterwards whatever the test left behind."""
    name = f"t-net-{uuid.uuid4().hex[:6]}"
    prefix = f"10.231.{random.randrange(256)}."  # a random /24 so parallel runs rarely meet
    yield name, prefix
    with contextlib.suppress(HypervisorError):
        virt_network.undefine_network(lab_host.uri, name)


def create(lab_host, operator, name: str, prefix: str, **values):
    defaults = {"address": f"{prefix}1", "prefix": 24, "dhcp_start": f"{prefix}100", "dhcp_end": f"{prefix}150"}
    return services.create_network(lab_host, actor=operator, **{"name": name, "mode": "isolated", **defaults, **values})


def inventory(lab_host) -> dict[str, dict]:
    lab_host.refresh_from_db()
    return {n["name"]: n for n in lab_host.networks}


def test_an_isolated_network_lives_its_whole_life_on_a_lab_host(lab, lab_host, operator, net):
    name, prefix = net
    change = create(lab_host, operator, name, prefix, autostart=True)
    assert change.network.active and change.network.autostart and change.network.bridge.startswith("virbr")
    info = lab.virsh(1, "net-info", name).stdout
    assert "Active:         yes" in info and "Autostart:      yes" in info
    dumped = lab.virsh(1, "net-dumpxml", name).stdout
    assert "<forward" not in dumped and f"<range start='{prefix}100' end='{prefix}150'/>" in dumped
    assert inventory(lab_host)[name] == {
        "name": name,
        "active": True,
        "forward_mode": "",
        "bridge": change.network.bridge,
    }

    services.add_static_host(
        lab_host, name, actor=operator, mac="52:54:00:3c:00:01", ip=f"{prefix}60", hostname="fixed"
    )
    entry = f"<host mac='52:54:00:3c:00:01' name='fixed' ip='{prefix}60'/>"
    assert entry in lab.virsh(1, "net-dumpxml", name).stdout  # live
    assert entry in lab.virsh(1, "net-dumpxml", "--inactive", name).stdout  # and persistent
    assert services.list_leases(lab_host, name, actor=operator) == ()  # nobody on it yet

    services.remove_static_host(lab_host, name, "52:54:00:3c:00:01", actor=operator)
    assert "52:54:00:3c:00:01" not in lab.virsh(1, "net-dumpxml", "--inactive", name).stdout

    services.set_autostart(lab_host, name, False, actor=operator)
    assert "Autostart:      no" in lab.virsh(1, "net-info", name).stdout
    services.stop_network(lab_host, name, actor=operator)
    assert "Active:         no" in lab.virsh(1, "net-info", name).stdout and not inventory(lab_host)[name]["active"]
    # A static host added while stopped goes into the definition only, and is there after a start.
    services.add_static_host(lab_host, name, actor=operator, mac="52:54:00:3c:00:02", ip=f"{prefix}61")
    services.start_network(lab_host, name, actor=operator)
    assert "52:54:00:3c:00:02" in lab.virsh(1, "net-dumpxml", name).stdout

    services.delete_network(lab_host, name, actor=operator)
    assert lab.virsh(1, "net-info", name, check=False).returncode != 0
    assert name not in inventory(lab_host)


def test_bad_input_and_conflicts_leave_the_lab_host_unchanged(lab, lab_host, operator, net):
    name, prefix = net
    before = lab.virsh(1, "net-list", "--all", "--name").stdout
    for values in [
        {"name": "bad'name"},
        {"name": "lab-iso"},  # exists
        {"address": "192.168.250.7"},  # overlaps lab-iso
        {"dhcp_start": f"{prefix}0"},
        {"bridge": "virbr-lab"},  # lab-iso's bridge
    ]:
        with pytest.raises(ServiceError):
            create(lab_host, operator, **{"name": name, "prefix": prefix, **values})
    assert lab.virsh(1, "net-list", "--all", "--name").stdout == before


def test_a_guest_gets_its_static_lease_and_its_network_cannot_go_while_it_runs(lab, lab_host, operator, net):
    name, prefix = net
    create(lab_host, operator, name, prefix)
    guest = f"{GUEST_PREFIX}net-{uuid.uuid4().hex[:6]}"
    iso = storage.find_volume_in_pool(lab_host.uri, "iso", "labos-live.iso")
    disk = storage.create_volume(lab_host.uri, "default", f"{guest}.qcow2", capacity_bytes=32 << 20)
    spec = vm_services.tiny_guest_spec(guest, disk_path=disk, iso_path=iso, network=name)
    serial_log(1, guest).unlink(missing_ok=True)
    vm = vm_services.define_vm(lab_host, domain_xml.build_domain_xml(spec), actor=operator)
    mac = vm.nics[0]["mac"]
    services.add_static_host(lab_host, name, actor=operator, mac=mac, ip=f"{prefix}77", hostname="pinned")

    vm = vm_services.run_lifecycle(vm, "start", actor=operator)
    try:
        leases = wait_for(
            lambda: services.list_leases(lab_host, name, actor=operator), 90, "a DHCP lease on the test network"
        )
        assert [(lease.mac, lease.ip) for lease in leases] == [(mac, f"{prefix}77")]

        for write in (services.stop_network, services.delete_network):
            with pytest.raises(ServiceError) as refused:
                write(lab_host, name, actor=operator)
            assert (refused.value.status, refused.value.code) == (409, "in-use") and guest in refused.value.message
        assert "Active:         yes" in lab.virsh(1, "net-info", name).stdout
    finally:
        with contextlib.suppress(HypervisorError):
            domain.force_off(lab_host.uri, vm.uuid)
    services.delete_network(lab_host, name, actor=operator)  # nothing runs on it any more
    assert lab.virsh(1, "net-info", name, check=False).returncode != 0
