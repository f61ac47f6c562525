"""VM pages. Thin: look up through the one gate, call a service, render inventory columns."""

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.middleware.csrf import get_token
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.accounts.permissions import get_object_or_deny, has_privilege
from apps.accounts.projects import creatable_hosts, projects_to_create_in
from apps.core.errors import ServiceError
from apps.core.http import action_response, client_address
from apps.hosts.models import Host
from apps.vms import provisioning, services
from apps.vms.choices import PowerState
from apps.vms.forms import CloneForm, CreateVMForm, DefineForm, DeleteForm, RenameForm, VMFilterForm
from apps.vms.models import VirtualMachine
from apps.vms.os_variants import OS_VARIANTS
from apps.vms.presenters import RowBuilder
from apps.vms.selectors import filter_vms, privileges_on, visible_vms


@login_required
@require_GET
def vm_list(request: HttpRequest) -> HttpResponse:
    hosts = Host.objects.restrict(request.user, "host.view")
    form = VMFilterForm(request.GET or None, hosts=hosts, states=PowerState.choices)
    queryset = visible_vms(request.user)
    if form.is_valid():
        queryset = filter_vms(
            queryset,
            host=form.cleaned_data["host"],
            state=form.cleaned_data["state"],
            name=form.cleaned_data["q"],
        )
    page = Paginator(queryset, 100).get_page(request.GET.get("page"))
    builder = RowBuilder(get_token(request))
    rows = [builder.row(vm, privileges_on(request.user, vm)) for vm in page.object_list]
    return render(request, "vms/list.html", {"page": page, "rows": rows, "form": form})


@login_required
@require_GET
def vm_detail(request: HttpRequest, pk: int) -> HttpResponse:
    vm = get_object_or_deny(VirtualMachine.objects.select_related("host", "owner"), request.user, pk)
    privileges = privileges_on(request.user, vm)
    return render(
        request,
        "vms/detail.html",
        {
            "vm": vm,
            "row": RowBuilder(get_token(request)).row(vm, privileges),
            "privileges": privileges,
            "rename_form": RenameForm(initial={"name": vm.name}),
        },
    )


@login_required
@require_POST
def vm_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    if action not in services.LIFECYCLE_ACTIONS:
        raise Http404
    lifecycle = services.LIFECYCLE_ACTIONS[action]
    vm = get_object_or_deny(VirtualMachine.objects.select_related("host"), request.user, pk, lifecycle.privilege)
    fallback = reverse("vms:detail", args=[vm.pk])
    try:
        vm = services.run_lifecycle(vm, action, actor=request.user, client_address=client_address(request))
    except ServiceError as error:
        return action_response(request, ok=False, message=error.message, fallback_url=fallback)
    message = _("%(action)s: %(name)s is now %(state)s.") % {
        "action": lifecycle.label,
        "name": vm.name,
        "state": vm.get_state_display(),
    }
    return action_response(request, ok=True, message=message, fallback_url=fallback)


@login_required
@require_POST
def vm_autostart(request: HttpRequest, pk: int) -> HttpResponse:
    vm = get_object_or_deny(VirtualMachine.objects.select_related("host"), request.user, pk, "vm.config")
    enabled = request.POST.get("enabled") == "1"
    fallback = reverse("vms:detail", args=[vm.pk])
    try:
        services.set_autostart(vm, enabled, actor=request.user, client_address=client_address(request))
    except ServiceError as error:
        return action_response(request, ok=False, message=error.message, fallback_url=fallback)
    message = _("Autostart is on.") if enabled else _("Autostart is off.")
    return action_response(request, ok=True, message=message, fallback_url=fallback)


@login_required
@require_POST
def vm_rename(request: HttpRequest, pk: int) -> HttpResponse:
    vm = get_object_or_deny(VirtualMachine.objects.select_related("host"), request.user, pk, "vm.config")
    form = RenameForm(request.POST)
    fallback = reverse("vms:detail", args=[vm.pk])
    if not form.is_valid():
        return action_response(request, ok=False, message=_("Enter a new name."), fallback_url=fallback)
    try:
        vm = services.rename_vm(
            vm, form.cleaned_data["name"], actor=request.user, client_address=client_address(request)
        )
    except ServiceError as error:
        return action_response(request, ok=False, message=error.message, fallback_url=fallback)
    return action_response(
        request, ok=True, message=_("Renamed to %(name)s.") % {"name": vm.name}, fallback_url=fallback
    )


@login_required
@require_http_methods(["GET", "POST"])
def vm_delete(request: HttpRequest, pk: int) -> HttpResponse:
    vm = get_object_or_deny(VirtualMachine.objects.select_related("host"), request.user, pk, "vm.delete")
    form = DeleteForm(request.POST or None, vm_name=vm.name)
    if request.method == "POST" and form.is_valid():
        try:
            removed = services.delete_vm(
                vm,
                actor=request.user,
                remove_disks=form.cleaned_data["remove_disks"],
                client_address=client_address(request),
            )
        except ServiceError as error:
            form.add_error(None, error.message)
        else:
            message = _("%(name)s was deleted.") % {"name": vm.name}
            if removed:
                message += " " + _("Removed volumes: %(paths)s") % {"paths": ", ".join(removed)}
            return action_response(request, ok=True, message=message, fallback_url=reverse("vms:list"))
    return render(request, "vms/delete.html", {"vm": vm, "form": form})


@login_required
@require_GET
def vm_xml(request: HttpRequest, pk: int) -> HttpResponse:
    vm = get_object_or_deny(VirtualMachine.objects.select_related("host"), request.user, pk)
    try:
        xml_text = services.export_xml(vm, actor=request.user)
    except ServiceError as error:
        return action_response(
            request, ok=False, message=error.message, fallback_url=reverse("vms:detail", args=[vm.pk])
        )
    response = HttpResponse(xml_text, content_type="application/xml; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{vm.name}.xml"'
    return response


@login_required
@require_http_methods(["GET", "POST"])
def vm_define(request: HttpRequest) -> HttpResponse:
    hosts = Host.objects.restrict(request.user, "vm.create")
    if not hosts.exists():
        raise PermissionDenied
    form = DefineForm(request.POST or None, request.FILES or None, hosts=hosts)
    if request.method == "POST" and form.is_valid():
        try:
            vm = services.define_vm(
                form.cleaned_data["host"],
                form.cleaned_data["xml_text"],
                actor=request.user,
                client_address=client_address(request),
            )
        except ServiceError as error:
            form.add_error(None, error.message)
        else:
            return redirect("vms:detail", pk=vm.pk)
    return render(request, "vms/define.html", {"form": form})


def _chosen_host(request: HttpRequest, hosts) -> Host | None:
    """The wizard's host: the one posted, else ?host=, else the first the user may create VMs on."""
    wanted = request.POST.get("host") or request.GET.get("host") or ""
    found = hosts.filter(pk=int(wanted)).first() if wanted.isdigit() else None
    return found or hosts.first()


@login_required
@require_http_methods(["GET", "POST"])
def vm_create(request: HttpRequest) -> HttpResponse:
    """The create wizard: Review validates against the host and shows the equivalent commands;
    Create queues the vm.create job and opens its page."""
    hosts = creatable_hosts(request.user)
    host = _chosen_host(request, hosts)
    if host is None:
        raise PermissionDenied
    pools, isos = provisioning.wizard_choices(host)
    on_host = has_privilege(request.user, host, "vm.create")
    projects = [p for p in projects_to_create_in(request.user) if on_host or host in p.hosts.all()]
    form = CreateVMForm(
        request.POST or None,
        hosts=hosts,
        host=host,
        pools=pools,
        isos=isos,
        projects=projects,
        project_required=not on_host,
    )
    review = None
    if request.method == "POST" and form.is_valid():
        params = form.params()
        try:
            if request.POST.get("step") == "create":
                job = provisioning.create_vm(host, params, actor=request.user, client_address=client_address(request))
                return redirect("jobs:detail", pk=job.pk)
            cleaned = provisioning.validate_create(host, params)
            review = {
                "params": cleaned,
                "variant": OS_VARIANTS[cleaned["os_variant"]],
                "disk_size": provisioning.human_bytes(cleaned["disk_size_bytes"]),
                "commands": provisioning.create_commands(cleaned),
                "project": next((p.name for p in projects if p.pk == params.get("project")), ""),
            }
        except provisioning.FieldError as error:
            form.add_service_error(error.field, error.message)
        except ServiceError as error:
            form.add_error(None, error.message)
    return render(request, "vms/create.html", {"form": form, "host": host, "review": review, "variants": OS_VARIANTS})


@login_required
@require_POST
def vm_clone(request: HttpRequest, pk: int) -> HttpResponse:
    vm = get_object_or_deny(VirtualMachine.objects.select_related("host"), request.user, pk, "vm.clone")
    form = CloneForm(request.POST)
    fallback = reverse("vms:detail", args=[vm.pk])
    if not form.is_valid():
        return action_response(request, ok=False, message=_("Check the clone's name and pool."), fallback_url=fallback)
    try:
        job = provisioning.clone_vm(vm, form.cleaned_data, actor=request.user, client_address=client_address(request))
    except ServiceError as error:
        return action_response(request, ok=False, message=error.message, fallback_url=fallback)
    return redirect("jobs:detail", pk=job.pk)
