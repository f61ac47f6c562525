"""Effective permissions (page and API), the project pages and the Permissions tab of VMs, hosts and projects.

Explaining one's own access needs only to see the object; another user's needs user.manage on its scope:
bob cannot see alice's VM (404), carol sees it (Viewer on the host) but may not look at alice's access (403).
The Permissions tab is for user.manage on the object (root here): 404 for bob, 403 for carol who sees it.
Projects: carol may view project "matrix" (Viewer on it), bob may not see it; writes need user.manage on "/".
"""

from django.urls import reverse

from tests.core.matrix_rows.projects import a_project
from tests.support.matrix import Route


def effective_page(world) -> str:
    return f"{reverse('account-effective')}?user=alice&scope={world.vm.scope}"


def effective_api(world) -> str:
    return f"{reverse('user-effective', args=[world.alice.pk])}?scope={world.vm.scope}"


def project_page(world) -> str:
    return reverse("account-project", args=[a_project(world)])


def a_grant_on(world, scope: str, username: str) -> int:
    from apps.accounts.models import Grant

    return Grant.objects.get(scope=scope, user__username=username).pk


def a_vmuser_for_bob(world) -> dict:
    from apps.accounts.models import Role

    return {"role": Role.objects.get(name="VMUser").pk, "user": world.bob.pk, "propagate": "on"}


def tab_routes(name: str, object_id, scope, revoked: str) -> list[Route]:
    """The tab, grant and revoke rows for one kind of object; `revoked` names whose grant on it is revoked."""
    return [
        Route(name, "get", lambda w: reverse(name, args=[object_id(w)]), 302, 404, 403, "root", 200),
        Route(
            f"{name}-grant",
            "post",
            lambda w: reverse(f"{name}-grant", args=[object_id(w)]),
            302,
            404,
            403,
            "root",
            302,
            data=a_vmuser_for_bob,
        ),
        Route(
            f"{name}-revoke",
            "post",
            lambda w: reverse(f"{name}-revoke", args=[object_id(w), a_grant_on(w, scope(w), revoked)]),
            302,
            404,
            403,
            "root",
            302,
        ),
    ]


def project_post(name: str, data=None) -> Route:
    return Route(name, "post", lambda w: reverse(name, args=[a_project(w)]), 302, 404, 403, "root", 302, data=data)


ROUTES = [
    Route("account-effective", "get", effective_page, 302, 404, 403, "alice", 200),
    Route("user-effective", "get", effective_api, 401, 404, 403, "alice", 200, api=True),
    Route("account-projects", "get", lambda w: reverse("account-projects"), 302, 200, 200, "root", 200),
    Route("account-project", "get", project_page, 302, 404, 200, "root", 200),
    project_post("account-project-edit", lambda w: {"name": "matrix", "description": "renamed"}),
    project_post("account-project-quota", lambda w: {"max_vms": "3"}),
    project_post("account-project-hosts", lambda w: {"hosts": [w.host.pk]}),
    project_post("account-project-delete"),
    *tab_routes("vm-permissions", lambda w: w.vm.pk, lambda w: w.vm.scope, "alice"),
    *tab_routes("host-permissions", lambda w: w.host.pk, lambda w: w.host.scope, "oscar"),
    *tab_routes("project-permissions", a_project, lambda w: f"/projects/{a_project(w)}", "carol"),
]
