"""vCPU and memory routes (issue 6, Compute): the VM page's forms and statistics fragment, and the API.

world.vm is shut off and alice's; world.running_vm runs (alice may change it too, carol only look).
"""

from django.urls import reverse

from tests.support.matrix import Route


def vm(world) -> int:
    return world.vm.pk


def running_vm(world) -> int:
    return world.running_vm.pk


ROUTES = [
    # The page's forms answer with a redirect to the VM page (with the message); the fragment is HTML.
    *(
        Route(name, "post", lambda w, name=name: reverse(name, args=[vm(w)]), 302, 404, 403, "alice", 302, data=data)
        for name, data in [
            ("vms:compute-vcpus", lambda w: {"value": 2, "config": "on"}),
            ("vms:compute-memory", lambda w: {"value": 256, "config": "on"}),
        ]
    ),
    Route(
        "vms:memory-stats",
        "get",
        lambda w: reverse("vms:memory-stats", args=[running_vm(w)]),
        302,
        404,
        200,
        "alice",
        200,
    ),
    *(
        Route(name, "post", lambda w, name=name: reverse(name, args=[vm(w)]), 401, 404, 403, "alice", 200, data, True)
        for name, data in [("vm-vcpus", lambda w: {"count": 2}), ("vm-memory", lambda w: {"mib": 256})]
    ),
    Route(
        "vm-memory-stats",
        "get",
        lambda w: reverse("vm-memory-stats", args=[running_vm(w)]),
        401,
        404,
        200,
        "alice",
        200,
        api=True,
    ),
]
