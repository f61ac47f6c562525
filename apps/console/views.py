"""Console pages: our own noVNC page and the serial console page (never websockify's vnc.html)."""

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from apps.accounts.permissions import get_object_or_deny, has_privilege
from apps.console.services import console_privilege
from apps.core.http import strict_csp
from apps.vms.models import VirtualMachine


def _page_context(request: HttpRequest, vm: VirtualMachine, view_only: bool) -> dict:
    may_start = has_privilege(request.user, vm, "vm.power")
    return {
        "vm": vm,
        "view_only": view_only,
        "ticket_url": reverse("vm-console", args=[vm.pk]),
        "vm_api_url": reverse("vm-detail", args=[vm.pk]),
        "idle_seconds": settings.KVMPANEL_CONSOLE_IDLE_SECONDS,
        "start_url": reverse("vms:action", args=[vm.pk, "start"]) if may_start else "",
        "live_url": f"/ws/vms/{vm.pk}/",
    }


@login_required
@require_GET
@strict_csp
def vnc(request: HttpRequest, pk: int) -> HttpResponse:
    vm = get_object_or_deny(VirtualMachine.objects.select_related("host"), request.user, pk)
    allowed, view_only = console_privilege(request.user, vm)
    if not allowed:
        raise PermissionDenied
    return render(request, "console/vnc.html", _page_context(request, vm, view_only))


@login_required
@require_GET
@strict_csp
def serial(request: HttpRequest, pk: int) -> HttpResponse:
    vm = get_object_or_deny(VirtualMachine.objects.select_related("host"), request.user, pk, "vm.console")
    return render(request, "console/serial.html", _page_context(request, vm, view_only=False))
