"""The VM page's disk and snapshot forms (templates/vms/_disks.html, _snapshots.html).

Thin: look up through the one gate, turn the form into the service's arguments, call the service.
Quick changes come back to the VM page with a message; convert, move and snapshot changes open the
job's page. Forms that destroy something confirm first through htmx (`hx-confirm`); for an htmx
request a success navigates with `HX-Redirect` and a refusal shows its message in place.
"""

from datetime import UTC, datetime

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from apps.accounts.permissions import get_object_or_deny
from apps.core.errors import ServiceError
from apps.core.http import action_response, client_address
from apps.vms import disks as disk_services
from apps.vms import snapshots as snapshot_services
from apps.vms.models import VirtualMachine
from apps.vms.selectors import privileges_on

UNITS = [(str(1 << 20), "MiB"), (str(1 << 30), "GiB")]


class SizeForm(forms.Form):
    """A size as a number and a unit; the services judge the bytes (zero, negative, beyond the pool)."""

    size = forms.IntegerField(label=gettext_lazy("Size"))
    unit = forms.TypedChoiceField(label=gettext_lazy("Unit"), choices=UNITS, coerce=int, initial=str(1 << 30))

    @property
    def size_bytes(self) -> int:
        return self.cleaned_data["size"] * self.cleaned_data["unit"]


class AttachForm(forms.Form):
    source = forms.ChoiceField(choices=[("new", "new"), ("existing", "existing")])
    pool = forms.CharField(required=False)
    name = forms.CharField(required=False, strip=False)
    size = forms.IntegerField(required=False)
    unit = forms.TypedChoiceField(choices=UNITS, coerce=int, required=False, empty_value=1 << 30)
    format = forms.CharField(required=False)
    path = forms.CharField(required=False, strip=False)
    target = forms.CharField(required=False)
    live = forms.BooleanField(required=False)
    persistent = forms.BooleanField(required=False)


class CopyForm(forms.Form):
    format = forms.CharField(required=False)
    pool = forms.CharField(required=False)
    name = forms.CharField(required=False, strip=False)
    delete_source = forms.BooleanField(required=False)


class SnapshotForm(forms.Form):
    name = forms.CharField(strip=False)
    description = forms.CharField(required=False)


def _vm(request: HttpRequest, pk: int, privilege: str | None) -> VirtualMachine:
    return get_object_or_deny(VirtualMachine.objects.select_related("host"), request.user, pk, privilege)


def _back(request: HttpRequest, vm: VirtualMachine, *, ok: bool, message: str, url: str = "") -> HttpResponse:
    """A refusal: the message in place (htmx) or on the VM page. A success: on to `url` (the job's
    page) or back to the VM page, with the message."""
    fallback = reverse("vms:detail", args=[vm.pk])
    htmx = request.headers.get("HX-Request") == "true"
    if not ok or (not htmx and not url):
        return action_response(request, ok=ok, message=message, fallback_url=fallback)
    messages.success(request, message)
    if htmx:
        response = HttpResponse(status=204)
        response["HX-Redirect"] = url or fallback
        return response
    return redirect(url)


def _ran(request: HttpRequest, vm: VirtualMachine, call) -> HttpResponse:
    try:
        change = call()
    except ServiceError as error:
        return _back(request, vm, ok=False, message=error.message)
    return _back(request, vm, ok=True, message=_("Done: %(command)s") % {"command": change.command})


def _started(request: HttpRequest, vm: VirtualMachine, call) -> HttpResponse:
    try:
        job = call()
    except ServiceError as error:
        return _back(request, vm, ok=False, message=error.message)
    url = reverse("jobs:detail", args=[job.pk])
    return _back(request, vm, ok=True, message=_("Started: %(command)s") % {"command": job.params["command"]}, url=url)


def _invalid_form(request: HttpRequest, vm: VirtualMachine, message: str) -> HttpResponse:
    return _back(request, vm, ok=False, message=message)


@login_required
@require_POST
def disk_attach(request: HttpRequest, pk: int) -> HttpResponse:
    vm = _vm(request, pk, disk_services.PRIVILEGE)
    form = AttachForm(request.POST)
    if not form.is_valid():
        return _invalid_form(request, vm, _("Enter the size as a whole number."))
    data = form.cleaned_data
    where = {"live": data["live"], "persistent": data["persistent"], "target": data["target"]}
    if data["source"] == "existing":
        arguments = {"path": data["path"], **where}
    else:
        if data["size"] is None:
            return _invalid_form(request, vm, _("Enter the new disk's size."))
        size_bytes = data["size"] * (data["unit"] or 1 << 30)
        arguments = {"pool": data["pool"], "name": data["name"], "size_bytes": size_bytes, **where}
        arguments["fmt"] = data["format"] or "qcow2"
    return _ran(
        request,
        vm,
        lambda: disk_services.attach_disk(vm, actor=request.user, client_address=client_address(request), **arguments),
    )


@login_required
@require_POST
def disk_detach(request: HttpRequest, pk: int, target: str) -> HttpResponse:
    vm = _vm(request, pk, disk_services.PRIVILEGE)
    return _ran(
        request,
        vm,
        lambda: disk_services.detach_disk(vm, target, actor=request.user, client_address=client_address(request)),
    )


@login_required
@require_POST
def disk_grow(request: HttpRequest, pk: int, target: str) -> HttpResponse:
    vm = _vm(request, pk, disk_services.PRIVILEGE)
    form = SizeForm(request.POST)
    if not form.is_valid():
        return _invalid_form(request, vm, _("Enter the size as a whole number."))
    return _ran(
        request,
        vm,
        lambda: disk_services.grow_disk(
            vm, target, form.size_bytes, actor=request.user, client_address=client_address(request)
        ),
    )


@login_required
@require_POST
def disk_media(request: HttpRequest, pk: int, target: str) -> HttpResponse:
    """Insert the image at `path`, or eject when the form sends `eject`."""
    vm = _vm(request, pk, disk_services.PRIVILEGE)
    path = "" if "eject" in request.POST else request.POST.get("path", "")
    if not path and "eject" not in request.POST:
        return _invalid_form(request, vm, _("Enter the path of an ISO image in a storage pool."))
    return _ran(
        request,
        vm,
        lambda: disk_services.change_media(
            vm, target, actor=request.user, path=path, client_address=client_address(request)
        ),
    )


def _copy_job(request: HttpRequest, pk: int, target: str, *, convert: bool) -> HttpResponse:
    vm = _vm(request, pk, disk_services.PRIVILEGE)
    form = CopyForm(request.POST)
    form.is_valid()  # every field is optional text: the service judges the values
    data = form.cleaned_data
    arguments = {
        "pool": data.get("pool", ""),
        "name": data.get("name", ""),
        "delete_source": data.get("delete_source", False),
        "actor": request.user,
        "client_address": client_address(request),
    }
    if convert:
        return _started(
            request, vm, lambda: disk_services.convert_disk(vm, target, fmt=data.get("format", ""), **arguments)
        )
    return _started(request, vm, lambda: disk_services.move_disk(vm, target, **arguments))


@login_required
@require_POST
def disk_convert(request: HttpRequest, pk: int, target: str) -> HttpResponse:
    return _copy_job(request, pk, target, convert=True)


@login_required
@require_POST
def disk_move(request: HttpRequest, pk: int, target: str) -> HttpResponse:
    return _copy_job(request, pk, target, convert=False)


@login_required
@require_GET
def snapshot_tree(request: HttpRequest, pk: int) -> HttpResponse:
    """The snapshot tree, read from the host (snapshots are not in the inventory): the VM page loads
    it after it has shown, so the page itself stays free of hypervisor calls."""
    vm = _vm(request, pk, None)
    try:
        snapshots, error = snapshot_services.list_snapshots(vm, actor=request.user), ""
    except ServiceError as refused:
        snapshots, error = (), refused.message
    rows = [
        {
            "snapshot": snapshot,
            "created_at": datetime.fromtimestamp(snapshot.created, tz=UTC),
            "indent": "\u2003" * snapshot.depth + ("└ " if snapshot.depth else ""),
        }
        for snapshot in snapshots
    ]
    context = {"vm": vm, "privileges": privileges_on(request.user, vm), "rows": rows, "error": error}
    return render(request, "vms/_snapshots.html", {**context, "fragment": True})


@login_required
@require_POST
def snapshot_create(request: HttpRequest, pk: int) -> HttpResponse:
    vm = _vm(request, pk, "vm.snapshot")
    form = SnapshotForm(request.POST)
    if not form.is_valid():
        return _invalid_form(request, vm, _("Enter a name for the snapshot."))
    return _started(
        request,
        vm,
        lambda: snapshot_services.create_snapshot(
            vm,
            actor=request.user,
            name=form.cleaned_data["name"],
            description=form.cleaned_data["description"],
            client_address=client_address(request),
        ),
    )


@login_required
@require_POST
def snapshot_revert(request: HttpRequest, pk: int, name: str) -> HttpResponse:
    vm = _vm(request, pk, "vm.snapshot.rollback")
    return _started(
        request,
        vm,
        lambda: snapshot_services.revert_snapshot(vm, name, actor=request.user, client_address=client_address(request)),
    )


@login_required
@require_POST
def snapshot_delete(request: HttpRequest, pk: int, name: str) -> HttpResponse:
    vm = _vm(request, pk, "vm.snapshot")
    return _started(
        request,
        vm,
        lambda: snapshot_services.delete_snapshot(vm, name, actor=request.user, client_address=client_address(request)),
    )
