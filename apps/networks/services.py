"""Every write to a host's virtual networks, and the reads the pages and API show.

Each write authorizes `network.manage` on the host, validates its input before libvirt sees it
(apps/networks/validators.py, then the checks against the host's other networks here), calls the
virt layer, re-syncs the host's `networks` inventory field and writes an audit event on the host
(a refused or failed attempt is audited too). Bad input raises ServiceError (400, or 409 for a
conflict with what exists or a network in use) and changes nothing. Reading needs `host.view`.
"""

import ipaddress
from dataclasses import dataclass
from typing import NoReturn

from django.utils.translation import gettext as _

from apps.accounts.permissions import has_privilege
from apps.audit.choices import AuditResult
from apps.audit.services import audited_hypervisor_write, record_event
from apps.core.errors import AccessDenied, ServiceError, from_hypervisor
from apps.hosts.models import Host
from apps.networks import validators
from apps.networks.sync import resync_quietly, sync_host_networks
from kvmpanel.virt import network as virt_network
from kvmpanel.virt.errors import HypervisorError
from kvmpanel.virt.network import DhcpLease, NetworkInfo, NetworkSpec

PRIVILEGE = "network.manage"
# Modes whose guests reach networks outside the host: the page warns before creating them.
OUTBOUND_MODES = ("nat", "route", "bridge")


@dataclass(frozen=True)
class NetworkChange:
    network: NetworkInfo | None  # None after a delete
    command: str  # the equivalent virsh command(s)


# ---- authorization, auditing, errors ----


def _authorize(actor, host: Host, verb: str, name: str, client_address: str | None) -> None:
    if not has_privilege(actor, host, PRIVILEGE):
        record_event(
            actor=actor,
            verb=verb,
            target=host,
            result=AuditResult.DENIED,
            detail={"network": name},
            client_address=client_address,
        )
        raise AccessDenied()


def _read(host: Host, actor, operation):
    if not has_privilege(actor, host, "host.view"):
        raise AccessDenied()
    try:
        return operation()
    except HypervisorError as error:
        raise _service_error(error, host) from error


def _service_error(error: HypervisorError, host: Host) -> ServiceError:
    if error.code in {"no-network", "no-host"}:
        return ServiceError(error.message, status=404, code=error.code)
    return from_hypervisor(error, host_name=host.name)


def _write(host: Host, operation, *, actor, verb: str, detail: dict, client_address: str | None):
    """Run a hypervisor write; a failure is audited as FAILED and becomes a ServiceError."""
    try:
        result = audited_hypervisor_write(
            operation,
            actor=actor,
            verb=verb,
            target=host,
            host_name=host.name,
            detail=detail,
            client_address=client_address,
        )
    except ServiceError as error:
        cause = error.__cause__
        resync_quietly(host)
        if isinstance(cause, HypervisorError) and cause.code in {"no-network", "no-host"}:
            raise ServiceError(cause.message, status=404, code=cause.code) from cause
        raise
    resync_quietly(host)
    record_event(actor=actor, verb=verb, target=host, detail=detail, client_address=client_address)
    return result


def _refuse(actor, host: Host, verb: str, detail: dict, error: ServiceError, client_address: str | None) -> NoReturn:
    """Audit a refused write (bad input, a conflict) and raise the refusal."""
    record_event(
        actor=actor,
        verb=verb,
        target=host,
        result=AuditResult.FAILED,
        message=error.message,
        detail=detail,
        client_address=client_address,
    )
    raise error


# ---- reads ----


def list_networks(host: Host, *, actor) -> tuple[NetworkInfo, ...]:
    """`virsh net-list --all` with details; refreshes the host's inventory field on the way."""

    def run() -> tuple[NetworkInfo, ...]:
        infos = virt_network.list_networks(host.uri)
        sync_host_networks(host, infos)
        return infos

    return _read(host, actor, run)


def get_network(host: Host, name: str, *, actor) -> NetworkInfo:
    """`virsh net-info NAME` + `net-dumpxml NAME`; 404 (code "no-network") when there is none."""
    return _read(host, actor, lambda: virt_network.network_info(host.uri, name))


def list_leases(host: Host, name: str, *, actor) -> tuple[DhcpLease, ...]:
    """`virsh net-dhcp-leases NAME` (an inactive network has none). 409 code "unsupported" where
    the host's driver cannot say (the test driver)."""

    def run() -> tuple[DhcpLease, ...]:
        if not virt_network.network_info(host.uri, name).active:
            return ()
        return virt_network.dhcp_leases(host.uri, name)

    return _read(host, actor, run)


# ---- commands shown in the UI ----


def command_for(verb: str, name: str, **values: str) -> str:
    """The virsh command equivalent to the panel's action `verb` on network `name`."""
    commands = {
        "create": f"virsh net-define {name}.xml && virsh net-start {name}",
        "start": f"virsh net-start {name}",
        "stop": f"virsh net-destroy {name}",
        "autostart": f"virsh net-autostart {name}",
        "autostart-off": f"virsh net-autostart --disable {name}",
        "delete": f"virsh net-destroy {name}; virsh net-undefine {name}",
        "leases": f"virsh net-dhcp-leases {name}",
        "static-host-add": (
            f"virsh net-update {name} add-last ip-dhcp-host "
            f"\"<host mac='{values.get('mac', 'MAC')}' name='{values.get('hostname', 'NAME')}' "
            f"ip='{values.get('ip', 'IP')}'/>\" --live --config"
        ),
        "static-host-delete": (
            f"virsh net-update {name} delete ip-dhcp-host \"<host mac='{values.get('mac', 'MAC')}'/>\" --live --config"
        ),
    }
    return commands[verb]


# ---- writes ----


def build_spec(
    *,
    name: object,
    mode: object,
    bridge: object = "",
    address: object = "",
    prefix: object = 24,
    dhcp_start: object = "",
    dhcp_end: object = "",
) -> NetworkSpec:
    """A NetworkSpec from user input, or ServiceError (400) saying what is wrong."""
    name = validators.validate_network_name(name)
    mode = validators.validate_mode(mode)
    if mode == "bridge":
        bridge = validators.validate_bridge_name(bridge, required=True)
        if address not in (None, "") or dhcp_start not in (None, ""):
            raise validators.invalid(
                _("A network on an existing host bridge has no address or DHCP of its own: the bridge's LAN has."),
                code="invalid-subnet",
            )
        return NetworkSpec(name=name, mode=mode, bridge=bridge)
    bridge = validators.validate_bridge_name(bridge, required=False)
    interface = validators.validate_subnet(address, prefix)
    start, end = validators.validate_dhcp_range(dhcp_start, dhcp_end, interface)
    return NetworkSpec(
        name=name,
        mode=mode,
        bridge=bridge,
        address=str(interface.ip),
        prefix=interface.network.prefixlen,
        dhcp_start=start,
        dhcp_end=end,
    )


def _check_against_host(spec: NetworkSpec, existing: tuple[NetworkInfo, ...], host: Host) -> None:
    subnet = ipaddress.IPv4Network(f"{spec.address}/{spec.prefix}", strict=False) if spec.address else None
    for other in existing:
        if other.name == spec.name:
            raise validators.conflict(
                _("Host %(host)s already has a network named %(name)s.") % {"host": host.name, "name": spec.name}
            )
        if spec.bridge and other.bridge == spec.bridge:
            raise validators.conflict(
                _("Network %(other)s already uses bridge %(bridge)s.") % {"other": other.name, "bridge": spec.bridge},
                code="bridge-in-use",
            )
        if subnet is not None and other.subnet and subnet.overlaps(ipaddress.IPv4Network(other.subnet)):
            raise validators.conflict(
                _("%(subnet)s overlaps network %(other)s (%(other_subnet)s).")
                % {"subnet": subnet, "other": other.name, "other_subnet": other.subnet},
                code="overlap",
            )


def create_network(
    host: Host,
    *,
    actor,
    name: object,
    mode: object,
    bridge: object = "",
    address: object = "",
    prefix: object = 24,
    dhcp_start: object = "",
    dhcp_end: object = "",
    autostart: bool = False,
    start: bool = True,
    client_address: str | None = None,
) -> NetworkChange:
    """`virsh net-define` + `net-start` (+ `net-autostart`), all or nothing.

    Refused before libvirt sees anything: a bad name, mode, bridge name, address, prefix or DHCP
    range (400), and a name, bridge or overlapping subnet the host's networks already have (409).
    """
    detail = {"network": name if isinstance(name, str) else repr(name), "mode": mode}
    _authorize(actor, host, "network.create", detail["network"], client_address)
    try:
        spec = build_spec(
            name=name,
            mode=mode,
            bridge=bridge,
            address=address,
            prefix=prefix,
            dhcp_start=dhcp_start,
            dhcp_end=dhcp_end,
        )
        existing = _read(host, actor, lambda: virt_network.list_networks(host.uri))
        _check_against_host(spec, existing, host)
    except ServiceError as error:
        _refuse(actor, host, "network.create", detail, error, client_address)
    xml_text = virt_network.build_network_xml(spec)
    detail.update(
        {
            "bridge": spec.bridge,
            "subnet": f"{spec.address}/{spec.prefix}" if spec.address else "",
            "dhcp": [spec.dhcp_start, spec.dhcp_end] if spec.dhcp_start else [],
            "autostart": autostart,
            "start": start,
        }
    )
    info = _write(
        host,
        lambda: virt_network.define_network(host.uri, xml_text, start=start, autostart=autostart),
        actor=actor,
        verb="network.create",
        detail=detail,
        client_address=client_address,
    )
    command = command_for("create", spec.name) + (f" && virsh net-autostart {spec.name}" if autostart else "")
    return NetworkChange(info, command)


def _network_write(
    host: Host, name: str, verb: str, virt_call, *args, actor, client_address, command: str
) -> NetworkChange:
    """`virt_call(uri, name, *args)` on the host, audited, then the network as it is now."""
    detail = {"network": name, **({"arguments": list(args)} if args else {})}
    _authorize(actor, host, verb, name, client_address)
    _write(
        host,
        lambda: virt_call(host.uri, name, *args),
        actor=actor,
        verb=verb,
        detail=detail,
        client_address=client_address,
    )
    return NetworkChange(_read(host, actor, lambda: virt_network.network_info(host.uri, name)), command)


def start_network(host: Host, name: str, *, actor, client_address: str | None = None) -> NetworkChange:
    """`virsh net-start NAME`."""
    return _network_write(
        host,
        name,
        "network.start",
        virt_network.start_network,
        actor=actor,
        client_address=client_address,
        command=command_for("start", name),
    )


def stop_network(host: Host, name: str, *, actor, client_address: str | None = None) -> NetworkChange:
    """`virsh net-destroy NAME`. Refused (409, code "in-use") while a running VM has a NIC on it:
    stopping would cut that guest off."""
    _authorize(actor, host, "network.stop", name, client_address)
    _refuse_while_used(host, name, "network.stop", actor=actor, client_address=client_address)
    return _network_write(
        host,
        name,
        "network.stop",
        virt_network.stop_network,
        actor=actor,
        client_address=client_address,
        command=command_for("stop", name),
    )


def set_autostart(host: Host, name: str, enabled: bool, *, actor, client_address: str | None = None) -> NetworkChange:
    """`virsh net-autostart [--disable] NAME`."""
    return _network_write(
        host,
        name,
        "network.autostart",
        virt_network.set_network_autostart,
        bool(enabled),
        actor=actor,
        client_address=client_address,
        command=command_for("autostart" if enabled else "autostart-off", name),
    )


def _refuse_while_used(host: Host, name: str, verb: str, *, actor, client_address) -> None:
    users = _read(host, actor, lambda: virt_network.running_domains_on(host.uri, name))
    if users:
        error = validators.conflict(
            _("Network %(network)s is used by running VMs: %(vms)s. Shut them down or move their NICs first.")
            % {"network": name, "vms": ", ".join(users)},
            code="in-use",
        )
        _refuse(actor, host, verb, {"network": name, "used_by": list(users)}, error, client_address)


def delete_network(host: Host, name: str, *, actor, client_address: str | None = None) -> NetworkChange:
    """`virsh net-destroy NAME; net-undefine NAME`. Refused (409, code "in-use") while a running VM
    has a NIC on it; a shut-off VM's NIC keeps naming the network (it will not start until the
    network exists again)."""
    _authorize(actor, host, "network.delete", name, client_address)
    _read(host, actor, lambda: virt_network.network_info(host.uri, name))  # 404 before anything else
    _refuse_while_used(host, name, "network.delete", actor=actor, client_address=client_address)
    _write(
        host,
        lambda: virt_network.undefine_network(host.uri, name),
        actor=actor,
        verb="network.delete",
        detail={"network": name},
        client_address=client_address,
    )
    return NetworkChange(None, command_for("delete", name))


def add_static_host(
    host: Host,
    name: str,
    *,
    actor,
    mac: object,
    ip: object,
    hostname: object = "",
    client_address: str | None = None,
) -> NetworkChange:
    """`virsh net-update NAME add-last ip-dhcp-host ... --live --config` (live while the network
    runs, config while it is persistent). Refused: a bad MAC, IP or hostname, an IP outside the
    network's subnet (400), a network without DHCP, and a MAC, IP or hostname already given (409)."""
    detail = {"network": name, "mac": mac, "ip": ip, "hostname": hostname}
    _authorize(actor, host, "network.static-host.add", name, client_address)
    info = _read(host, actor, lambda: virt_network.network_info(host.uri, name))
    try:
        if not info.dhcp_start or not info.address:
            raise validators.conflict(
                _("Network %(network)s has no DHCP range, so it cannot hand out static leases.") % {"network": name},
                code="no-dhcp",
            )
        interface = ipaddress.IPv4Interface(f"{info.address}/{info.prefix}")
        entry = validators.validate_static_host(mac, ip, hostname, interface)
        for other in info.static_hosts:
            if other.mac.lower() == entry.mac or other.ip == entry.ip or (entry.name and other.name == entry.name):
                raise validators.conflict(
                    _("Network %(network)s already has a static host %(mac)s → %(ip)s %(name)s.")
                    % {"network": name, "mac": other.mac, "ip": other.ip, "name": other.name},
                )
    except ServiceError as error:
        _refuse(actor, host, "network.static-host.add", detail, error, client_address)
    detail.update({"mac": entry.mac, "ip": entry.ip, "hostname": entry.name})
    info = _write(
        host,
        lambda: virt_network.add_static_host(host.uri, name, entry),
        actor=actor,
        verb="network.static-host.add",
        detail=detail,
        client_address=client_address,
    )
    return NetworkChange(info, command_for("static-host-add", name, mac=entry.mac, ip=entry.ip, hostname=entry.name))


def remove_static_host(
    host: Host, name: str, mac: object, *, actor, client_address: str | None = None
) -> NetworkChange:
    """`virsh net-update NAME delete ip-dhcp-host "<host mac=.../>" --live --config`; 404 (code
    "no-host") when the network has no static host with that MAC."""
    _authorize(actor, host, "network.static-host.delete", name, client_address)
    try:
        value = validators.validate_mac(mac)
    except ServiceError as error:
        _refuse(actor, host, "network.static-host.delete", {"network": name, "mac": mac}, error, client_address)
    info = _write(
        host,
        lambda: virt_network.remove_static_host(host.uri, name, value),
        actor=actor,
        verb="network.static-host.delete",
        detail={"network": name, "mac": value},
        client_address=client_address,
    )
    return NetworkChange(info, command_for("static-host-delete", name, mac=value))
