"""Input rules for virtual networks: pure functions (no database, no hypervisor) that return the
value when it is acceptable and raise ServiceError (400) saying what is wrong otherwise.

Addresses, subnets and DHCP ranges are parsed with `ipaddress` here, before any XML is built; the
checks against what the host already has (names, bridges, overlapping subnets) are in services.py.
"""

import ipaddress
import re

from django.utils.translation import gettext as _

from apps.storage.validators import conflict, invalid
from kvmpanel.virt.network import BRIDGE_NAME_PATTERN, MODES, NETWORK_NAME_PATTERN, DhcpHost

__all__ = ["conflict", "invalid"]  # the refusal shapes every validator here raises, shared with storage

MAC_PATTERN = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
HOSTNAME_PATTERN = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
# A network smaller than /30 has no room for the host's address and a guest.
MAX_PREFIX = 30
MIN_PREFIX = 8


def validate_network_name(name: object) -> str:
    if not isinstance(name, str) or not name.isascii() or not NETWORK_NAME_PATTERN.match(name) or ".." in name:
        raise invalid(
            _(
                "A network name is 1-63 characters: letters, digits, '.', '_' or '-', starting with a letter or "
                "digit, without '..'."
            ),
            code="invalid-name",
        )
    return name


def validate_mode(mode: object) -> str:
    if mode not in MODES:
        raise invalid(
            _("The mode must be one of: %(modes)s.") % {"modes": ", ".join(MODES)},
            code="invalid-mode",
        )
    return str(mode)


def validate_bridge_name(bridge: object, *, required: bool) -> str:
    if bridge in (None, "") and not required:
        return ""
    if not isinstance(bridge, str) or not bridge.isascii() or not BRIDGE_NAME_PATTERN.match(bridge):
        raise invalid(
            _("A bridge name is 1-15 characters: letters, digits, '.', '_' or '-'."),
            code="invalid-bridge",
        )
    return bridge


def validate_subnet(address: object, prefix: object) -> ipaddress.IPv4Interface:
    """The host's address on the network with its prefix, e.g. 192.168.100.1/24: a private IPv4
    address that is neither the network's own address nor its broadcast address."""
    if isinstance(prefix, str) and prefix.strip().isdigit():
        prefix = int(prefix)
    if isinstance(prefix, bool) or not isinstance(prefix, int) or not MIN_PREFIX <= prefix <= MAX_PREFIX:
        raise invalid(
            _("The prefix length must be a number from %(low)d to %(high)d.") % {"low": MIN_PREFIX, "high": MAX_PREFIX},
            code="invalid-subnet",
        )
    try:
        interface = ipaddress.IPv4Interface(f"{address}/{prefix}") if isinstance(address, str) else None
    except ValueError:
        interface = None
    if interface is None or "/" in str(address):
        raise invalid(_("%(address)s is not an IPv4 address.") % {"address": address}, code="invalid-subnet")
    network = interface.network
    if interface.ip in (network.network_address, network.broadcast_address):
        raise invalid(
            _("%(address)s is the network's or broadcast address of %(network)s; give the host's address in it.")
            % {"address": interface.ip, "network": network},
            code="invalid-subnet",
        )
    if not network.is_private or interface.ip.is_loopback or interface.ip.is_link_local or interface.ip.is_multicast:
        raise invalid(
            _("%(network)s is not a private IPv4 network (use 10/8, 172.16/12 or 192.168/16).") % {"network": network},
            code="invalid-subnet",
        )
    return interface


def _address_in(value: object, interface: ipaddress.IPv4Interface, what: str) -> ipaddress.IPv4Address:
    try:
        address = ipaddress.IPv4Address(value) if isinstance(value, str) else None
    except ValueError:
        address = None
    network = interface.network
    if address is None:
        raise invalid(_("%(what)s %(value)s is not an IPv4 address.") % {"what": what, "value": value})
    if address not in network or address in (network.network_address, network.broadcast_address):
        raise invalid(
            _("%(what)s %(value)s is not a usable address of %(network)s.")
            % {"what": what, "value": value, "network": network},
            code="outside-subnet",
        )
    if address == interface.ip:
        raise invalid(
            _("%(what)s %(value)s is the host's own address on the network.") % {"what": what, "value": value},
            code="outside-subnet",
        )
    return address


def validate_dhcp_range(start: object, end: object, interface: ipaddress.IPv4Interface) -> tuple[str, str]:
    """("", "") for no DHCP; else a range inside the subnet, start <= end, not covering the host's address."""
    if start in (None, "") and end in (None, ""):
        return "", ""
    first = _address_in(start, interface, _("DHCP range start"))
    last = _address_in(end, interface, _("DHCP range end"))
    if first > last:
        raise invalid(
            _("The DHCP range starts at %(start)s, after its end %(end)s.") % {"start": first, "end": last},
            code="invalid-range",
        )
    if first <= interface.ip <= last:
        raise invalid(
            _("The DHCP range %(start)s-%(end)s includes the host's own address %(address)s.")
            % {"start": first, "end": last, "address": interface.ip},
            code="invalid-range",
        )
    return str(first), str(last)


def validate_mac(mac: object) -> str:
    """A unicast MAC written aa:bb:cc:dd:ee:ff (returned lower-case)."""
    value = mac.strip().lower() if isinstance(mac, str) else ""
    if not MAC_PATTERN.match(value) or int(value[:2], 16) & 1:
        raise invalid(
            _("%(mac)s is not a unicast MAC address like 52:54:00:12:34:56.") % {"mac": mac}, code="invalid-mac"
        )
    return value


def validate_hostname(name: object) -> str:
    if name in (None, ""):
        return ""
    if not isinstance(name, str) or not name.isascii() or not HOSTNAME_PATTERN.match(name):
        raise invalid(
            _("A hostname is 1-63 letters, digits or '-', not starting or ending with '-'."), code="invalid-hostname"
        )
    return name


def validate_static_host(mac: object, ip: object, name: object, interface: ipaddress.IPv4Interface) -> DhcpHost:
    return DhcpHost(
        mac=validate_mac(mac),
        ip=str(_address_in(ip, interface, _("The static address"))),
        name=validate_hostname(name),
    )
