"""Virtual networks on the test:/// host: input refused before libvirt sees it, the XML of all four
modes (NAT and routed are only built and parsed, never started), the life of an isolated network,
static DHCP hosts, the inventory field kept in step, and the refusals (403, in use, duplicates)."""

import xml.etree.ElementTree as ET

import pytest

from apps.audit.models import AuditEvent
from apps.core.errors import ServiceError
from apps.networks import services
from kvmpanel.virt import network as virt_network
from kvmpanel.virt.errors import HypervisorError
from kvmpanel.virt.network import NetworkSpec, build_network_xml, parse_network_xml

GOOD = {
    "mode": "isolated",
    "address": "10.77.0.1",
    "prefix": 24,
    "dhcp_start": "10.77.0.100",
    "dhcp_end": "10.77.0.199",
}


def create(world, **values):
    return services.create_network(world.host, actor=world.root, **{"name": "t-net", **GOOD, **values})


def host_network_names(world) -> list[str]:
    world.host.refresh_from_db()
    return sorted(n["name"] for n in world.host.networks)


def parse(xml_text: str) -> ET.Element:
    return ET.fromstring(xml_text)  # noqa: S314 - XML the panel itself built


# ---- XML of the four modes ----


def test_an_isolated_network_has_no_forward_and_its_dhcp_range():
    root = parse(build_network_xml(services.build_spec(name="t-iso", **GOOD)))
    assert root.find("forward") is None
    assert root.find("ip").attrib == {"address": "10.77.0.1", "netmask": "255.255.255.0"}
    assert root.find("ip/dhcp/range").attrib == {"start": "10.77.0.100", "end": "10.77.0.199"}


@pytest.mark.parametrize("mode", ["nat", "route"])
def test_nat_and_routed_networks_are_built_with_their_forward_mode(mode):
    xml_text = build_network_xml(services.build_spec(name=f"t-{mode}", **{**GOOD, "mode": mode}))
    root = parse(xml_text)
    assert root.find("forward").get("mode") == mode
    info = parse_network_xml(xml_text)
    assert (info.mode, info.subnet, info.dhcp_start, info.dhcp_end) == (
        mode,
        "10.77.0.0/24",
        "10.77.0.100",
        "10.77.0.199",
    )


def test_a_host_bridge_network_names_the_bridge_and_has_no_address():
    root = parse(build_network_xml(services.build_spec(name="t-br", mode="bridge", bridge="br0")))
    assert root.find("forward").get("mode") == "bridge"
    assert root.find("bridge").get("name") == "br0"
    assert root.find("ip") is None


def test_names_cannot_smuggle_xml_into_the_network_definition():
    with pytest.raises(HypervisorError):  # the virt layer's own last check
        build_network_xml(NetworkSpec(name="a'/><forward mode='nat'", mode="isolated", address="10.0.0.1"))


# ---- input refused before libvirt sees it ----


@pytest.mark.parametrize(
    "name",
    ["", "a/b", "..", "a..b", "<net>", "a'b", 'a"b', "a&b", "x" * 300, "-lead", "net work", "é", 5, None],
)
def test_it_refuses_a_bad_network_name(name):
    with pytest.raises(ServiceError) as refused:
        services.build_spec(name=name, **GOOD)
    assert refused.value.status == 400 and refused.value.code == "invalid-name"


@pytest.mark.parametrize(
    ("values", "code"),
    [
        ({"mode": "open"}, "invalid-mode"),
        ({"address": "10.77.0.0"}, "invalid-subnet"),  # the network address
        ({"address": "10.77.0.255"}, "invalid-subnet"),  # broadcast
        ({"address": "10.77.0.300"}, "invalid-subnet"),
        ({"address": "8.8.8.1"}, "invalid-subnet"),  # not private
        ({"address": "10.77.0.1/24"}, "invalid-subnet"),
        ({"prefix": 31}, "invalid-subnet"),
        ({"prefix": "abc"}, "invalid-subnet"),
        ({"dhcp_start": "10.78.0.100"}, "outside-subnet"),
        ({"dhcp_end": "10.77.0.255"}, "outside-subnet"),
        ({"dhcp_start": "10.77.0.1"}, "outside-subnet"),  # the host's own address
        ({"dhcp_start": "10.77.0.200", "dhcp_end": "10.77.0.100"}, "invalid-range"),
        ({"dhcp_start": "10.77.0.2", "dhcp_end": "10.77.0.9", "address": "10.77.0.5"}, "invalid-range"),
        ({"dhcp_start": "nonsense"}, "invalid"),
        ({"bridge": "a-much-too-long-bridge"}, "invalid-bridge"),
        ({"bridge": "br/0"}, "invalid-bridge"),
    ],
)
def test_it_refuses_bad_addresses_ranges_and_bridges(values, code):
    with pytest.raises(ServiceError) as refused:
        services.build_spec(name="t-net", **{**GOOD, **values})
    assert refused.value.status == 400 and refused.value.code == code


def test_a_host_bridge_network_needs_a_bridge_and_takes_no_subnet():
    with pytest.raises(ServiceError):
        services.build_spec(name="t-br", mode="bridge")
    with pytest.raises(ServiceError):
        services.build_spec(name="t-br", mode="bridge", bridge="br0", address="10.0.0.1")


@pytest.mark.parametrize("mac", ["52:54:00:12:34", "52-54-00-12-34-56", "zz:54:00:12:34:56", "01:00:5e:00:00:01", 7])
def test_it_refuses_a_bad_mac(world, mac):
    create(world)
    with pytest.raises(ServiceError) as refused:
        services.add_static_host(world.host, "t-net", actor=world.root, mac=mac, ip="10.77.0.50")
    assert refused.value.code == "invalid-mac"
    assert virt_network.network_info(world.host.uri, "t-net").static_hosts == ()


# ---- against the host's other networks ----


def test_it_refuses_a_duplicate_name_bridge_or_overlapping_subnet(world):
    # The test host already has "isolated" on 192.168.250.0/24, bridge virbr-test.
    for values, code in [
        ({"name": "isolated"}, "exists"),
        ({"bridge": "virbr-test"}, "bridge-in-use"),
        ({"address": "192.168.250.129", "prefix": 25, "dhcp_start": "", "dhcp_end": ""}, "overlap"),
        ({"address": "192.168.0.1", "prefix": 16, "dhcp_start": "", "dhcp_end": ""}, "overlap"),
    ]:
        with pytest.raises(ServiceError) as refused:
            create(world, **values)
        assert (refused.value.status, refused.value.code) == (409, code)
    assert [n.name for n in virt_network.list_networks(world.host.uri)] == ["isolated"]
    assert AuditEvent.objects.filter(verb="network.create", result="failed").count() == 4


# ---- the life of an isolated network ----


def test_an_isolated_network_lives_its_whole_life_and_the_inventory_follows(world):
    change = create(world, autostart=True)
    assert change.network.active and change.network.autostart and change.network.mode == "isolated"
    assert "virsh net-define t-net.xml" in change.command
    assert host_network_names(world) == ["isolated", "t-net"]

    change = services.add_static_host(
        world.host, "t-net", actor=world.root, mac="52:54:00:AA:BB:01", ip="10.77.0.50", hostname="web"
    )
    assert change.network.static_hosts == (virt_network.DhcpHost("52:54:00:aa:bb:01", "10.77.0.50", "web"),)
    assert "add-last ip-dhcp-host" in change.command
    for mac, ip, name in [("52:54:00:aa:bb:01", "10.77.0.51", ""), ("52:54:00:aa:bb:02", "10.77.0.50", "")]:
        with pytest.raises(ServiceError) as refused:
            services.add_static_host(world.host, "t-net", actor=world.root, mac=mac, ip=ip, hostname=name)
        assert refused.value.status == 409
    with pytest.raises(ServiceError) as refused:
        services.add_static_host(world.host, "t-net", actor=world.root, mac="52:54:00:aa:bb:03", ip="10.78.0.5")
    assert refused.value.code == "outside-subnet"

    services.remove_static_host(world.host, "t-net", "52:54:00:aa:bb:01", actor=world.root)
    assert virt_network.network_info(world.host.uri, "t-net").static_hosts == ()
    with pytest.raises(ServiceError) as refused:
        services.remove_static_host(world.host, "t-net", "52:54:00:aa:bb:01", actor=world.root)
    assert refused.value.status == 404

    assert not services.set_autostart(world.host, "t-net", False, actor=world.root).network.autostart
    assert not services.stop_network(world.host, "t-net", actor=world.root).network.active
    world.host.refresh_from_db()
    assert {n["name"]: n["active"] for n in world.host.networks}["t-net"] is False
    assert services.start_network(world.host, "t-net", actor=world.root).network.active
    services.delete_network(world.host, "t-net", actor=world.root)
    assert host_network_names(world) == ["isolated"]
    verbs = set(AuditEvent.objects.filter(result="ok", verb__startswith="network.").values_list("verb", flat=True))
    assert verbs >= {"network.create", "network.static-host.add", "network.stop", "network.start", "network.delete"}


def test_a_network_running_vms_use_cannot_be_stopped_or_deleted(world):
    for write in (services.stop_network, services.delete_network):
        with pytest.raises(ServiceError) as refused:
            write(world.host, "isolated", actor=world.root)
        assert (refused.value.status, refused.value.code) == (409, "in-use")
        assert "vm0000" in refused.value.message
    assert virt_network.network_info(world.host.uri, "isolated").active


def test_an_operator_or_viewer_may_look_but_not_change_networks(world):
    assert [n.name for n in services.list_networks(world.host, actor=world.carol)] == ["isolated"]
    for actor in (world.carol, world.oscar):
        with pytest.raises(ServiceError) as refused:
            services.create_network(world.host, actor=actor, name="t-x", **GOOD)
        assert refused.value.status == 403
    with pytest.raises(ServiceError) as refused:
        services.list_networks(world.host, actor=world.bob)
    assert refused.value.status == 403
    assert AuditEvent.objects.filter(verb="network.create", result="denied").count() == 2


def test_a_missing_network_is_a_404(world):
    with pytest.raises(ServiceError) as refused:
        services.start_network(world.host, "nope", actor=world.root)
    assert refused.value.status == 404
    with pytest.raises(ServiceError) as refused:
        services.delete_network(world.host, "nope", actor=world.root)
    assert refused.value.status == 404
