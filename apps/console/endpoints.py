"""Where a VM's console is, and how the panel's machine reaches it."""

from dataclasses import dataclass

from apps.hosts.models import Host


@dataclass(frozen=True)
class Endpoint:
    kind: str  # "vnc"
    socket: str = ""  # path on the panel's machine
    address: str = ""
    port: int = 0

    @property
    def reachable(self) -> bool:
        return bool(self.socket) or self.port > 0


def parse_endpoint(host: Host, described: str) -> Endpoint | None:
    """Turn the inventory's console column ("vnc unix:/path", "vnc 127.0.0.1:5901") into a target.

    Socket paths are as the host sees them; `host.path_map` rewrites prefixes for hosts whose
    filesystem the panel sees elsewhere (the lab hosts' /var/lib/libvirt lives under var/lab/).
    Only local and lab hosts are reachable this way; remote hosts get an SSH tunnel later.
    """
    kind, _, where = described.partition(" ")
    if kind != "vnc" or not where:
        return None
    if where.startswith("unix:"):
        return Endpoint(kind=kind, socket=host.local_path(where.removeprefix("unix:")))
    address, _, port = where.rpartition(":")
    if not port.isdigit() or not address:
        return None
    return Endpoint(kind=kind, address=address, port=int(port))
