"""`/account/quotas/`: usage against limits for every project and every user with a quota
(needs `user.manage` on "/", else 403). Read-only: limits are set through the API (apps/accounts/api_projects.py)."""

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from apps.accounts.api_projects import usage_payload
from apps.accounts.models import Project, Quota
from apps.accounts.projects import may_manage


@login_required
@require_GET
def quota_overview(request: HttpRequest) -> HttpResponse:
    if not may_manage(request.user):
        raise PermissionDenied
    projects = [(project, usage_payload(project=project)) for project in Project.objects.all()]
    users = [
        (quota.user, usage_payload(user=quota.user))
        for quota in Quota.objects.filter(user__isnull=False).select_related("user").order_by("user__username")
    ]
    return render(request, "accounts/quotas.html", {"projects": projects, "users": users})
