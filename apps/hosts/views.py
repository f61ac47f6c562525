"""Host pages: capabilities read from the inventory; add and refresh go through services."""

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.accounts.permissions import get_object_or_deny, has_privilege
from apps.core.errors import ServiceError
from apps.core.http import action_response
from apps.hosts import services
from apps.hosts.forms import AddHostForm
from apps.hosts.models import Host


@login_required
@require_GET
def host_list(request: HttpRequest) -> HttpResponse:
    hosts = Host.objects.restrict(request.user, "host.view")
    return render(
        request,
        "hosts/list.html",
        {"hosts": hosts, "can_add": has_privilege(request.user, None, "host.manage")},
    )


@login_required
@require_GET
def host_detail(request: HttpRequest, pk: int) -> HttpResponse:
    host = get_object_or_deny(Host.objects.all(), request.user, pk)
    return render(
        request,
        "hosts/detail.html",
        {
            "host": host,
            "can_manage": has_privilege(request.user, host, "host.manage"),
            "vm_count": host.vms.filter(missing=False).count(),
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def host_add(request: HttpRequest) -> HttpResponse:
    if not has_privilege(request.user, None, "host.manage"):
        raise PermissionDenied
    form = AddHostForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            host = services.add_host(actor=request.user, **form.cleaned_data)
        except ServiceError as error:
            form.add_error(None, error.message)
        else:
            return redirect("hosts:detail", pk=host.pk)
    return render(request, "hosts/add.html", {"form": form})


@login_required
@require_POST
def host_refresh(request: HttpRequest, pk: int) -> HttpResponse:
    host = get_object_or_deny(Host.objects.all(), request.user, pk, "host.manage")
    fallback = reverse("hosts:detail", args=[host.pk])
    try:
        services.refresh_host(host, actor=request.user)
    except ServiceError as error:
        return action_response(request, ok=False, message=error.message, fallback_url=fallback)
    return action_response(request, ok=True, message=_("Capabilities refreshed."), fallback_url=fallback)
