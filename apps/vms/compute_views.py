"""The VM page's "CPU and memory" card (templates/vms/_compute.html): two forms and a statistics
fragment.

Thin: look up through the one gate, turn the form into the service's arguments, call the service, and
come back to the VM page with the message (a refusal shows in place for htmx). A form carries either
the current value (`count` / `mib`, with the live and config boxes) or the maximum (`maximum` /
`maximum_mib`), as the API's bodies do.
"""

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from apps.core.errors import ServiceError
from apps.core.http import client_address
from apps.vms import compute as compute_services
from apps.vms.disk_views import _back, _ran, _vm


class ComputeForm(forms.Form):
    value = forms.IntegerField()
    maximum = forms.BooleanField(required=False)  # the submit button that changes the maximum
    live = forms.BooleanField(required=False)
    config = forms.BooleanField(required=False)


def _change(request: HttpRequest, pk: int, privilege: str, set_current, set_maximum) -> HttpResponse:
    vm = _vm(request, pk, privilege)
    form = ComputeForm(request.POST)
    if not form.is_valid():
        return _back(request, vm, ok=False, message=_("Enter a whole number."))
    data = form.cleaned_data
    audit = {"actor": request.user, "client_address": client_address(request)}
    if data["maximum"]:
        return _ran(request, vm, lambda: set_maximum(vm, data["value"], **audit))
    return _ran(request, vm, lambda: set_current(vm, data["value"], live=data["live"], config=data["config"], **audit))


@login_required
@require_POST
def compute_vcpus(request: HttpRequest, pk: int) -> HttpResponse:
    """`virsh setvcpus NAME N [--live] [--config]`, or `--maximum --config` while shut off."""
    services = compute_services
    return _change(request, pk, services.CPU_PRIVILEGE, services.set_vcpus, services.set_max_vcpus)


@login_required
@require_POST
def compute_memory(request: HttpRequest, pk: int) -> HttpResponse:
    """`virsh setmem NAME SIZE [--live] [--config]`, or `virsh setmaxmem NAME SIZE --config`."""
    services = compute_services
    return _change(request, pk, services.MEMORY_PRIVILEGE, services.set_memory, services.set_max_memory)


@login_required
@require_GET
def memory_stats(request: HttpRequest, pk: int) -> HttpResponse:
    """The `virsh dommemstat` fragment the card loads while the VM runs (the page itself asks no host)."""
    vm = _vm(request, pk, None)
    try:
        stats, error = compute_services.read_memory_stats(vm, actor=request.user), ""
    except ServiceError as refused:
        stats, error = None, refused.message
    return render(request, "vms/_memory_stats.html", {"vm": vm, "stats": stats, "error": error})
