"""The host inventory's copy of its networks (`Host.networks`, which the VM wizard offers).

The host probe writes that field too; after every network write the panel rewrites it at once so
a new, started or stopped network shows up in the wizard's choices without waiting for a refresh.
There is no table of networks: the Networks page reads libvirt directly (a host has a handful).
"""

import logging
from dataclasses import asdict

from apps.hosts.models import Host
from kvmpanel.virt import network as virt_network
from kvmpanel.virt.errors import HypervisorError

log = logging.getLogger(__name__)


def sync_host_networks(host: Host, infos: tuple[virt_network.NetworkInfo, ...] | None = None) -> list[dict]:
    """Write `host.networks` from libvirt (or from `infos` just listed). Raises HypervisorError."""
    infos = virt_network.list_networks(host.uri) if infos is None else infos
    host.networks = [asdict(info.summary) for info in infos]
    Host.objects.filter(pk=host.pk).update(networks=host.networks)
    return host.networks


def resync_quietly(host: Host) -> None:
    """Sync after a write that already succeeded: a failing sync must not turn it into an error."""
    try:
        sync_host_networks(host)
    except HypervisorError as error:
        log.warning("network sync of %s failed after a write: %s", host.name, error)
