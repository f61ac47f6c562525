"""`/account/projects/` and `/account/projects/<id>/`: a team's VMs, members, quota and placement (issue #5).

Who sees what follows apps/accounts/projects.py: holders of `user.manage` on "/" see every project,
others the ones they hold `vm.view` on; the rest are 404. Creating, renaming, setting the quota or the
placement and deleting need `user.manage` on "/" (403 on a visible project). Members are the grants on
/projects/{id}, managed on the project's Permissions tab (apps/accounts/permission_views.py). Thin:
every write is a service of apps/accounts/projects.py.
"""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.accounts import projects as services
from apps.accounts.api_projects import usage_payload
from apps.accounts.explain import manages_access
from apps.accounts.models import Grant, Project, Quota
from apps.core.errors import ServiceError
from apps.core.http import client_address
from apps.hosts.models import Host
from apps.vms.models import VirtualMachine


class ProjectForm(forms.Form):
    name = forms.CharField(label=gettext_lazy("Name"), max_length=64)
    description = forms.CharField(label=gettext_lazy("Description"), max_length=200, required=False)


class QuotaForm(forms.Form):
    max_vms = forms.IntegerField(label=gettext_lazy("VMs"), min_value=0, required=False)
    max_vcpus = forms.IntegerField(label=gettext_lazy("vCPUs"), min_value=0, required=False)
    max_memory_mib = forms.IntegerField(label=gettext_lazy("Memory (MiB)"), min_value=0, required=False)
    max_disk_gib = forms.IntegerField(label=gettext_lazy("Disk (GiB)"), min_value=0, required=False)


class PlacementForm(forms.Form):
    hosts = forms.ModelMultipleChoiceField(
        label=gettext_lazy("Hosts"),
        queryset=Host.objects.order_by("name"),
        widget=forms.CheckboxSelectMultiple,
        required=False,
    )


def _visible_project(request: HttpRequest, project_id: int) -> Project:
    project = get_object_or_404(Project.objects.prefetch_related("hosts"), pk=project_id)
    if not services.may_manage(request.user) and not services.visible_projects(request.user).filter(pk=project.pk):
        raise Http404
    return project


def _managed_project(request: HttpRequest, project_id: int) -> Project:
    """404 for a project the user cannot see, 403 for one they see without user.manage on "/"."""
    project = _visible_project(request, project_id)
    if not services.may_manage(request.user):
        raise PermissionDenied
    return project


def _list_page(request: HttpRequest, form: ProjectForm, *, status: int = 200) -> HttpResponse:
    projects = services.visible_projects(request.user).prefetch_related("hosts")
    rows = [(project, usage_payload(project=project)) for project in projects]
    context = {"rows": rows, "form": form, "can_manage": services.may_manage(request.user)}
    return render(request, "accounts/projects.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def project_list(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return _list_page(request, ProjectForm())
    if not services.may_manage(request.user):
        raise PermissionDenied
    form = ProjectForm(request.POST)
    if not form.is_valid():
        return _list_page(request, form, status=400)
    try:
        project = services.save_project(
            actor=request.user,
            name=form.cleaned_data["name"],
            description=form.cleaned_data["description"],
            client_address=client_address(request),
        )
    except ServiceError as error:
        form.add_error(None, error.message)
        return _list_page(request, form, status=error.status)
    messages.success(request, _("Project %(name)s created.") % {"name": project.name})
    return redirect("account-project", project_id=project.pk)


def _detail_page(request: HttpRequest, project: Project, *, forms_with_errors=None, status: int = 200) -> HttpResponse:
    quota = Quota.objects.filter(project=project).first()
    limits = {field: getattr(quota, field) for field in services.QUOTA_FIELDS} if quota else {}
    bound = forms_with_errors or {}
    vms = VirtualMachine.objects.restrict(request.user, "vm.view").filter(project=project).select_related("host")
    context = {
        "project": project,
        "usage": usage_payload(project=project),
        "members": Grant.objects.filter(scope=project.scope).select_related("user", "group", "role"),
        "vms": vms.defer("host__pools", "host__networks", "host__virtualization_flags"),
        "placement": list(project.hosts.all()),
        "can_manage": services.may_manage(request.user),
        "manages_access": manages_access(request.user, project),
        "empty": not project.vms.exists(),
        "project_form": bound.get("project")
        or ProjectForm(initial={"name": project.name, "description": project.description}),
        "quota_form": bound.get("quota") or QuotaForm(initial=limits),
        "placement_form": bound.get("placement") or PlacementForm(initial={"hosts": list(project.hosts.all())}),
    }
    return render(request, "accounts/project_detail.html", context, status=status)


@login_required
@require_GET
def project_detail(request: HttpRequest, project_id: int) -> HttpResponse:
    return _detail_page(request, _visible_project(request, project_id))


def _write(request: HttpRequest, project: Project, name: str, form: forms.Form, write) -> HttpResponse:
    """Run `write(cleaned_data)` for a valid form; the page again with the form's errors otherwise."""
    if form.is_valid():
        try:
            message = write(form.cleaned_data)
        except ServiceError as error:
            form.add_error(None, error.message)
            return _detail_page(request, project, forms_with_errors={name: form}, status=error.status)
        messages.success(request, message)
        return redirect("account-project", project_id=project.pk)
    return _detail_page(request, project, forms_with_errors={name: form}, status=400)


@login_required
@require_POST
def project_edit(request: HttpRequest, project_id: int) -> HttpResponse:
    project = _managed_project(request, project_id)

    def write(data: dict) -> str:
        services.save_project(
            actor=request.user,
            project=project,
            name=data["name"],
            description=data["description"],
            client_address=client_address(request),
        )
        return _("Project saved.")

    return _write(request, project, "project", ProjectForm(request.POST), write)


@login_required
@require_POST
def project_quota(request: HttpRequest, project_id: int) -> HttpResponse:
    project = _managed_project(request, project_id)

    def write(data: dict) -> str:
        services.set_quota(actor=request.user, project=project, limits=data, client_address=client_address(request))
        return _("Quota saved.")

    return _write(request, project, "quota", QuotaForm(request.POST), write)


@login_required
@require_POST
def project_hosts(request: HttpRequest, project_id: int) -> HttpResponse:
    project = _managed_project(request, project_id)

    def write(data: dict) -> str:
        services.set_project_hosts(project, data["hosts"], actor=request.user, client_address=client_address(request))
        return _("Placement saved.")

    return _write(request, project, "placement", PlacementForm(request.POST), write)


@login_required
@require_POST
def project_delete(request: HttpRequest, project_id: int) -> HttpResponse:
    project = _managed_project(request, project_id)
    try:
        services.delete_project(project, actor=request.user, client_address=client_address(request))
    except ServiceError as error:
        messages.error(request, error.message)
        return redirect("account-project", project_id=project.pk)
    messages.success(request, _("Project %(name)s deleted.") % {"name": project.name})
    return redirect("account-projects")
