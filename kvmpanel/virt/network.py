"""Virtual networks (seed §6), through libvirt's network API so remote hosts need no agent.

List with details (`virsh net-list --all` + `net-dumpxml`), define + start (`net-define`,
`net-start`, `net-autostart`), stop (`net-destroy`), undefine, DHCP leases (`net-dhcp-leases`) and
static DHCP hosts changed live and persistently (`net-update add-last|delete ip-dhcp-host`).

The network XML is built here with ElementTree from a `NetworkSpec` whose values the caller
(apps/networks/validators.py) has already checked with `ipaddress`; `build_network_xml` checks the
mode and name once more so nothing else can slip into the XML. Returns the frozen dataclasses
below and raises HypervisorError.
"""

import contextlib
import ipaddress
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import libvirt
from django.utils.translation import gettext as _

from kvmpanel.virt.connection import call
from kvmpanel.virt.errors import HypervisorError
from kvmpanel.virt.types import NetworkSummary

# "isolated" has no <forward>: guests reach each other and the host's DNS/DHCP, nothing else.
MODES = ("isolated", "nat", "route", "bridge")
NETWORK_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
# A Linux interface name: at most 15 characters (IFNAMSIZ - 1).
BRIDGE_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,14}$")


@dataclass(frozen=True)
class DhcpHost:
    """A static DHCP lease: this MAC always gets this IP (and, optionally, this hostname)."""

    mac: str
    ip: str
    name: str = ""


@dataclass(frozen=True)
class DhcpLease:
    """One current lease as dnsmasq handed it out (`virsh net-dhcp-leases`)."""

    mac: str
    ip: str
    prefix: int
    hostname: str
    client_id: str
    expiry_time: int  # unix time


@dataclass(frozen=True)
class NetworkSpec:
    """What the panel defines; every value already validated (apps/networks/validators.py)."""

    name: str
    mode: str  # one of MODES
    bridge: str = ""  # required for "bridge" (an existing host bridge); else empty = libvirt picks virbrN
    address: str = ""  # the host's address on the network (the guests' gateway); empty for "bridge"
    prefix: int = 24
    dhcp_start: str = ""
    dhcp_end: str = ""
    hosts: tuple[DhcpHost, ...] = ()


@dataclass(frozen=True)
class NetworkInfo:
    name: str
    uuid: str
    active: bool
    autostart: bool
    persistent: bool
    bridge: str
    forward_mode: str  # "" for isolated, else "nat", "route", "bridge", "open", ...
    address: str = ""
    netmask: str = ""
    prefix: int = 0
    dhcp_start: str = ""
    dhcp_end: str = ""
    static_hosts: tuple[DhcpHost, ...] = ()

    @property
    def mode(self) -> str:
        return self.forward_mode or "isolated"

    @property
    def subnet(self) -> str:
        """ "192.168.100.0/24", or "" for a network without an IPv4 address (bridge mode)."""
        if not self.address or not self.prefix:
            return ""
        return str(ipaddress.ip_interface(f"{self.address}/{self.prefix}").network)

    @property
    def summary(self) -> NetworkSummary:
        """The shape the host inventory (Host.networks) keeps, as the probe writes it."""
        return NetworkSummary(name=self.name, active=self.active, forward_mode=self.forward_mode, bridge=self.bridge)


def build_network_xml(spec: NetworkSpec) -> str:
    """`<network>` for `virsh net-define`, built with ElementTree (never string formatting)."""
    if spec.mode not in MODES:
        raise HypervisorError(_("Unknown network mode %(mode)s.") % {"mode": spec.mode}, code="invalid-argument")
    if not NETWORK_NAME_PATTERN.match(spec.name or "") or ".." in spec.name:
        raise HypervisorError(_("Invalid network name."), code="invalid-name")
    if spec.bridge and not BRIDGE_NAME_PATTERN.match(spec.bridge):
        raise HypervisorError(_("Invalid bridge name."), code="invalid-name")
    root = ET.Element("network")
    ET.SubElement(root, "name").text = spec.name
    if spec.mode == "bridge":
        if not spec.bridge:
            raise HypervisorError(_("A bridge network needs the host bridge's name."), code="invalid-argument")
        ET.SubElement(root, "forward", mode="bridge")
        ET.SubElement(root, "bridge", name=spec.bridge)
        return ET.tostring(root, encoding="unicode")
    if spec.mode != "isolated":
        ET.SubElement(root, "forward", mode=spec.mode)
    bridge = ET.SubElement(root, "bridge", stp="on", delay="0")
    if spec.bridge:
        bridge.set("name", spec.bridge)
    interface = ipaddress.IPv4Interface(f"{spec.address}/{spec.prefix}")
    ip = ET.SubElement(root, "ip", address=str(interface.ip), netmask=str(interface.netmask))
    if spec.dhcp_start:
        dhcp = ET.SubElement(ip, "dhcp")
        ET.SubElement(dhcp, "range", start=spec.dhcp_start, end=spec.dhcp_end)
        for host in spec.hosts:
            dhcp.append(dhcp_host_element(host))
    return ET.tostring(root, encoding="unicode")


def dhcp_host_element(host: DhcpHost) -> ET.Element:
    element = ET.Element("host", mac=host.mac)
    if host.name:
        element.set("name", host.name)
    element.set("ip", host.ip)
    return element


def _first_ipv4(root: ET.Element) -> ET.Element | None:
    for ip in root.iterfind("ip"):
        if ip.get("family", "ipv4") == "ipv4":
            return ip
    return None


def parse_network_xml(xml_text: str, *, active: bool = False, autostart: bool = False, persistent: bool = True):
    """A NetworkInfo from `net-dumpxml` output (only the first IPv4 address is described)."""
    root = ET.fromstring(xml_text)  # noqa: S314 - libvirt's own XML (or ours)
    forward = root.find("forward")
    bridge = root.find("bridge")
    ip = _first_ipv4(root)
    address = netmask = dhcp_start = dhcp_end = ""
    prefix = 0
    hosts: list[DhcpHost] = []
    if ip is not None:
        address = ip.get("address", "")
        netmask = ip.get("netmask", "")
        with contextlib.suppress(ValueError):
            prefix = (
                int(ip.get("prefix", "")) if ip.get("prefix") else ipaddress.IPv4Network(f"0.0.0.0/{netmask}").prefixlen
            )
        if prefix and not netmask:
            netmask = str(ipaddress.IPv4Network(f"0.0.0.0/{prefix}").netmask)
        dhcp_range = ip.find("./dhcp/range")
        if dhcp_range is not None:
            dhcp_start, dhcp_end = dhcp_range.get("start", ""), dhcp_range.get("end", "")
        hosts = [
            DhcpHost(mac=h.get("mac", ""), ip=h.get("ip", ""), name=h.get("name", ""))
            for h in ip.iterfind("./dhcp/host")
        ]
    return NetworkInfo(
        name=root.findtext("name", ""),
        uuid=root.findtext("uuid", ""),
        active=active,
        autostart=autostart,
        persistent=persistent,
        bridge=bridge.get("name", "") if bridge is not None else "",
        forward_mode=forward.get("mode", "nat") if forward is not None else "",
        address=address,
        netmask=netmask,
        prefix=prefix,
        dhcp_start=dhcp_start,
        dhcp_end=dhcp_end,
        static_hosts=tuple(hosts),
    )


def _network_info(network: libvirt.virNetwork) -> NetworkInfo:
    return parse_network_xml(
        network.XMLDesc(0),
        active=bool(network.isActive()),
        autostart=bool(network.autostart()) if network.isPersistent() else False,
        persistent=bool(network.isPersistent()),
    )


def list_networks(uri: str) -> tuple[NetworkInfo, ...]:
    """`virsh net-list --all` with each network's `net-dumpxml` details, by name."""

    def run(conn: libvirt.virConnect) -> tuple[NetworkInfo, ...]:
        networks = []
        for network in conn.listAllNetworks(0):
            try:
                networks.append(_network_info(network))
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_NO_NETWORK:  # undefined between list and read
                    raise
        return tuple(sorted(networks, key=lambda n: n.name))

    return call(uri, run)


def _lookup(conn: libvirt.virConnect, name: str) -> libvirt.virNetwork:
    try:
        return conn.networkLookupByName(name)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_NETWORK:
            raise HypervisorError(_("There is no network named %(name)s.") % {"name": name}, code="no-network") from exc
        raise


def network_info(uri: str, name: str) -> NetworkInfo:
    """`virsh net-info NAME` + `net-dumpxml`; HypervisorError(code="no-network") when it does not exist."""
    return call(uri, lambda conn: _network_info(_lookup(conn, name)))


def define_network(uri: str, xml_text: str, *, start: bool = True, autostart: bool = False) -> NetworkInfo:
    """`virsh net-define FILE; net-start NAME; net-autostart NAME`, all or nothing: when starting
    or autostart fails, the network is stopped and undefined again."""

    def run(conn: libvirt.virConnect) -> NetworkInfo:
        network = conn.networkDefineXML(xml_text)
        started = False
        try:
            if start:
                network.create()
                started = True
            if autostart:
                network.setAutostart(1)
            return _network_info(network)
        except BaseException:
            with contextlib.suppress(libvirt.libvirtError):
                if started:
                    network.destroy()
            with contextlib.suppress(libvirt.libvirtError):
                network.undefine()
            raise

    return call(uri, run)


def start_network(uri: str, name: str) -> None:
    """`virsh net-start NAME`."""
    call(uri, lambda conn: _lookup(conn, name).create())


def stop_network(uri: str, name: str) -> None:
    """`virsh net-destroy NAME`: the bridge and dnsmasq go; guests on it lose their link."""
    call(uri, lambda conn: _lookup(conn, name).destroy())


def set_network_autostart(uri: str, name: str, enabled: bool) -> None:
    """`virsh net-autostart [--disable] NAME`."""
    call(uri, lambda conn: _lookup(conn, name).setAutostart(1 if enabled else 0))


def undefine_network(uri: str, name: str) -> None:
    """`virsh net-destroy NAME; net-undefine NAME` (a transient network goes with the destroy)."""

    def run(conn: libvirt.virConnect) -> None:
        network = _lookup(conn, name)
        persistent = bool(network.isPersistent())
        if network.isActive():
            network.destroy()
        if persistent:
            network.undefine()

    call(uri, run)


def running_domains_on(uri: str, name: str) -> tuple[str, ...]:
    """Names of the running domains with an interface on network `name` (or on its bridge)."""

    def run(conn: libvirt.virConnect) -> tuple[str, ...]:
        bridge = ""
        with contextlib.suppress(HypervisorError, libvirt.libvirtError):
            bridge = _network_info(_lookup(conn, name)).bridge
        users = []
        for domain in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
            try:
                root = ET.fromstring(domain.XMLDesc(0))  # noqa: S314 - libvirt's own XML
            except libvirt.libvirtError:
                continue  # gone meanwhile
            for interface in root.iterfind("./devices/interface"):
                source = interface.find("source")
                if source is None:
                    continue
                kind = interface.get("type")
                if (kind == "network" and source.get("network") == name) or (
                    kind == "bridge" and bridge and source.get("bridge") == bridge
                ):
                    users.append(domain.name())
                    break
        return tuple(sorted(users))

    return call(uri, run)


def dhcp_leases(uri: str, name: str) -> tuple[DhcpLease, ...]:
    """`virsh net-dhcp-leases NAME`; HypervisorError(code="unsupported") where the driver has none."""

    def run(conn: libvirt.virConnect) -> tuple[DhcpLease, ...]:
        leases = _lookup(conn, name).DHCPLeases(None, 0) or []
        return tuple(
            sorted(
                (
                    DhcpLease(
                        mac=lease.get("mac") or "",
                        ip=lease.get("ipaddr") or "",
                        prefix=int(lease.get("prefix") or 0),
                        hostname=lease.get("hostname") or "",
                        client_id=lease.get("clientid") or "",
                        expiry_time=int(lease.get("expirytime") or 0),
                    )
                    for lease in leases
                ),
                key=lambda lease: (lease.ip, lease.mac),
            )
        )

    return call(uri, run)


def _update_flags(network: libvirt.virNetwork) -> int:
    """LIVE for a running network, CONFIG for a persistent one: both when it is both."""
    flags = 0
    if network.isActive():
        flags |= libvirt.VIR_NETWORK_UPDATE_AFFECT_LIVE
    if network.isPersistent():
        flags |= libvirt.VIR_NETWORK_UPDATE_AFFECT_CONFIG
    return flags


def add_static_host(uri: str, name: str, host: DhcpHost) -> NetworkInfo:
    """`virsh net-update NAME add-last ip-dhcp-host "<host mac=.. name=.. ip=../>" --live --config`."""
    xml_text = ET.tostring(dhcp_host_element(host), encoding="unicode")

    def run(conn: libvirt.virConnect) -> NetworkInfo:
        network = _lookup(conn, name)
        network.update(
            libvirt.VIR_NETWORK_UPDATE_COMMAND_ADD_LAST,
            libvirt.VIR_NETWORK_SECTION_IP_DHCP_HOST,
            -1,
            xml_text,
            _update_flags(network),
        )
        return _network_info(network)

    return call(uri, run)


def remove_static_host(uri: str, name: str, mac: str) -> NetworkInfo:
    """`virsh net-update NAME delete ip-dhcp-host "<host mac=.. .../>" --live --config`; the entry
    is sent as the network holds it (libvirt matches the whole entry). HypervisorError(code="no-host")
    when the network has no static host with that MAC."""

    def run(conn: libvirt.virConnect) -> NetworkInfo:
        network = _lookup(conn, name)
        existing = next((h for h in _network_info(network).static_hosts if h.mac.lower() == mac.lower()), None)
        if existing is None:
            raise HypervisorError(
                _("Network %(network)s has no static DHCP host %(mac)s.") % {"network": name, "mac": mac},
                code="no-host",
            )
        network.update(
            libvirt.VIR_NETWORK_UPDATE_COMMAND_DELETE,
            libvirt.VIR_NETWORK_SECTION_IP_DHCP_HOST,
            -1,
            ET.tostring(dhcp_host_element(existing), encoding="unicode"),
            _update_flags(network),
        )
        return _network_info(network)

    return call(uri, run)
