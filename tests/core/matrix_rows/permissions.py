"""Effective permissions (page and API) and the Permissions tab of VMs, hosts and projects.

Explaining one's own access needs only to see the object; another user's needs user.manage on its scope:
bob cannot see alice's VM (404), carol sees it (Viewer on the host) but may not look at alice's access (403).
"""

from django.urls import reverse

from tests.support.matrix import Route


def effective_page(world) -> str:
    return f"{reverse('account-effective')}?user=alice&scope={world.vm.scope}"


def effective_api(world) -> str:
    return f"{reverse('user-effective', args=[world.alice.pk])}?scope={world.vm.scope}"


ROUTES = [
    Route("account-effective", "get", effective_page, 302, 404, 403, "alice", 200),
    Route("user-effective", "get", effective_api, 401, 404, 403, "alice", 200, api=True),
]
