"""Virtual network routes (issue 6, Networks): the host's Networks page and its forms, and the API.

The test host has the isolated network "isolated" (192.168.250.0/24, no DHCP), which its running
VMs use; rows that change a network first make their own "matrix" network (with DHCP) to act on.
Seeing needs host.view on the host (carol, oscar); changing needs network.manage (root only).
"""

from django.urls import reverse

from tests.support.matrix import Route


def host(world) -> int:
    return world.host.pk


def a_network(world) -> str:
    """An isolated network "matrix" with DHCP and one static host on the test host (made once)."""
    from kvmpanel.virt import network

    if "matrix" not in {n.name for n in network.list_networks(world.host.uri)}:
        spec = network.NetworkSpec(
            name="matrix",
            mode="isolated",
            address="10.99.0.1",
            prefix=24,
            dhcp_start="10.99.0.10",
            dhcp_end="10.99.0.50",
            hosts=(network.DhcpHost("52:54:00:99:00:01", "10.99.0.60", "m"),),
        )
        network.define_network(world.host.uri, network.build_network_xml(spec))
    return "matrix"


def on_network(name: str, *extra):
    return lambda w: reverse(name, args=[host(w), a_network(w), *extra])


def new_network(w) -> dict:
    return {"name": "matrix-new", "mode": "isolated", "address": "10.98.0.1", "prefix": 24}


ROUTES = [
    Route("networks:list", "get", lambda w: reverse("networks:list", args=[host(w)]), 302, 404, 200, "root", 200),
    Route(
        "networks:create",
        "post",
        lambda w: reverse("networks:create", args=[host(w)]),
        302,
        404,
        403,
        "root",
        302,
        data=new_network,
    ),
    Route("networks:action", "post", on_network("networks:action", "stop"), 302, 404, 403, "root", 302),
    Route(
        "networks:static-host-add",
        "post",
        on_network("networks:static-host-add"),
        302,
        404,
        403,
        "root",
        302,
        data=lambda w: {"mac": "52:54:00:99:00:02", "ip": "10.99.0.61"},
    ),
    Route(
        "networks:static-host-delete",
        "post",
        on_network("networks:static-host-delete", "52:54:00:99:00:01"),
        302,
        404,
        403,
        "root",
        302,
    ),
    Route(
        "host-network-list",
        "get",
        lambda w: reverse("host-network-list", args=[host(w)]),
        401,
        404,
        200,
        "root",
        200,
        api=True,
    ),
    Route(
        "host-network-list",
        "post",
        lambda w: reverse("host-network-list", args=[host(w)]),
        401,
        404,
        403,
        "root",
        201,
        data=new_network,
        api=True,
    ),
    Route("host-network-detail", "get", on_network("host-network-detail"), 401, 404, 200, "root", 200, api=True),
    Route("host-network-detail", "delete", on_network("host-network-detail"), 401, 404, 403, "root", 200, api=True),
    Route("host-network-start", "post", on_network("host-network-start"), 401, 404, 403, "root", 409, api=True),
    Route("host-network-stop", "post", on_network("host-network-stop"), 401, 404, 403, "root", 200, api=True),
    Route(
        "host-network-autostart",
        "post",
        on_network("host-network-autostart"),
        401,
        404,
        403,
        "root",
        200,
        data=lambda w: {"enabled": True},
        api=True,
    ),
    # The test driver has no DHCP leases call: the host's refusal (409 unsupported), after the gate.
    Route("host-network-leases", "get", on_network("host-network-leases"), 401, 404, 409, "root", 409, api=True),
    Route(
        "host-network-static-hosts",
        "post",
        on_network("host-network-static-hosts"),
        401,
        404,
        403,
        "root",
        201,
        data=lambda w: {"mac": "52:54:00:99:00:02", "ip": "10.99.0.61"},
        api=True,
    ),
    Route(
        "host-network-static-host-detail",
        "delete",
        on_network("host-network-static-host-detail", "52:54:00:99:00:01"),
        401,
        404,
        403,
        "root",
        200,
        api=True,
    ),
]
