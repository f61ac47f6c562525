"""Project placement (POST /api/v1/projects/{id}/hosts/)."""

from django.urls import reverse

from tests.support.matrix import Route


def a_project(world):
    """Project "matrix" (id) that carol may view (Viewer on it), bob may not see at all."""
    from apps.accounts.models import Project
    from apps.accounts.services import grant_role

    project, created = Project.objects.get_or_create(name="matrix")
    if created:
        grant_role(actor=world.root, role="Viewer", scope=project.scope, user=world.carol)
    return project.pk


ROUTES = [
    Route(
        "project-hosts",
        "post",
        lambda w: reverse("project-hosts", args=[a_project(w)]),
        401,
        404,
        403,
        "root",
        200,
        lambda w: {"hosts": [w.host.pk]},
        True,
    ),
]
