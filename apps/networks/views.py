"""The Networks page of one host. Thin: look the host up through the one gate, call a service,
render what libvirt reports (a host has a handful of networks, so the page reads them live)."""

from collections.abc import Callable

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from apps.accounts.permissions import get_object_or_deny, has_privilege
from apps.core.errors import ServiceError
from apps.core.http import action_response, client_address
from apps.hosts.models import Host
from apps.networks import services
from apps.networks.forms import NetworkForm, StaticHostForm


def _host(request: HttpRequest, host_pk: int, privilege: str | None = None) -> Host:
    """The host through the one gate: 404 when invisible, 403 without `privilege` (for writes)."""
    return get_object_or_deny(Host.objects.all(), request.user, host_pk, privilege)


def _act(request: HttpRequest, host: Host, work: Callable[[], str]) -> HttpResponse:
    """Run one service call: its ServiceError is shown as the refusal, its return as the success."""
    fallback = reverse("networks:list", args=[host.pk])
    try:
        message = work()
    except ServiceError as error:
        return action_response(request, ok=False, message=error.message, fallback_url=fallback)
    return action_response(request, ok=True, message=message, fallback_url=fallback)


def _rows(request: HttpRequest, host: Host) -> tuple[list[dict], str]:
    """Each network with its leases and the virsh commands of its actions; or an error to show."""
    try:
        infos = services.list_networks(host, actor=request.user)
    except ServiceError as error:
        return [], error.message
    rows = []
    for info in infos:
        leases, leases_note = (), ""
        if info.active and info.dhcp_start:
            try:
                leases = services.list_leases(host, info.name, actor=request.user)
            except ServiceError as error:
                leases_note = error.message
        rows.append(
            {
                "network": info,
                "leases": leases,
                "leases_note": leases_note,
                "outbound": info.mode in services.OUTBOUND_MODES,
                "commands": {
                    verb.replace("-", "_"): services.command_for(verb, info.name)
                    for verb in ("start", "stop", "autostart", "autostart-off", "delete", "leases", "static-host-add")
                },
            }
        )
    return rows, ""


@login_required
@require_GET
def network_list(request: HttpRequest, host_pk: int) -> HttpResponse:
    host = _host(request, host_pk)
    rows, error = _rows(request, host)
    return render(
        request,
        "networks/list.html",
        {
            "host": host,
            "rows": rows,
            "error": error,
            "can_manage": has_privilege(request.user, host, services.PRIVILEGE),
            "form": NetworkForm(),
            "static_host_form": StaticHostForm(),
            "outbound_modes": services.OUTBOUND_MODES,
        },
    )


@login_required
@require_POST
def network_create(request: HttpRequest, host_pk: int) -> HttpResponse:
    host = _host(request, host_pk, services.PRIVILEGE)
    form = NetworkForm(request.POST)

    def work() -> str:
        if not form.is_valid():
            raise ServiceError(" ".join(str(e) for errors in form.errors.values() for e in errors))
        change = services.create_network(
            host, actor=request.user, client_address=client_address(request), **form.cleaned_data
        )
        return _("Network %(network)s created: %(command)s") % {
            "network": change.network.name,
            "command": change.command,
        }

    return _act(request, host, work)


_ACTIONS = {
    "start": lambda host, name, **kw: services.start_network(host, name, **kw),
    "stop": lambda host, name, **kw: services.stop_network(host, name, **kw),
    "autostart": lambda host, name, **kw: services.set_autostart(host, name, True, **kw),
    "autostart-off": lambda host, name, **kw: services.set_autostart(host, name, False, **kw),
    "delete": lambda host, name, **kw: services.delete_network(host, name, **kw),
}


@login_required
@require_POST
def network_action(request: HttpRequest, host_pk: int, name: str, action: str) -> HttpResponse:
    if action not in _ACTIONS:
        raise Http404
    host = _host(request, host_pk, services.PRIVILEGE)

    def work() -> str:
        change = _ACTIONS[action](host, name, actor=request.user, client_address=client_address(request))
        return _("Done: %(command)s") % {"command": change.command}

    return _act(request, host, work)


@login_required
@require_POST
def static_host_add(request: HttpRequest, host_pk: int, name: str) -> HttpResponse:
    host = _host(request, host_pk, services.PRIVILEGE)
    form = StaticHostForm(request.POST)

    def work() -> str:
        if not form.is_valid():
            raise ServiceError(" ".join(str(e) for errors in form.errors.values() for e in errors))
        change = services.add_static_host(
            host, name, actor=request.user, client_address=client_address(request), **form.cleaned_data
        )
        return _("Static DHCP host added: %(command)s") % {"command": change.command}

    return _act(request, host, work)


@login_required
@require_POST
def static_host_delete(request: HttpRequest, host_pk: int, name: str, mac: str) -> HttpResponse:
    host = _host(request, host_pk, services.PRIVILEGE)

    def work() -> str:
        change = services.remove_static_host(
            host, name, mac, actor=request.user, client_address=client_address(request)
        )
        return _("Static DHCP host removed: %(command)s") % {"command": change.command}

    return _act(request, host, work)
