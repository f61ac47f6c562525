"""Storage pages. Thin: look up through the one gate, call a service, render inventory rows.

Uploads and downloads go through the API endpoints (the pool page's script sends the file as the
request body with progress; the download link is the API's streaming response).
"""

from collections.abc import Callable

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.accounts.permissions import get_object_or_deny, has_privilege
from apps.core.errors import ServiceError
from apps.core.http import action_response, client_address
from apps.hosts.models import Host
from apps.storage import services, transfers
from apps.storage.forms import PoolForm, ResizeForm, VolumeForm
from apps.storage.models import HostStorage, StoragePool, StorageUpload, StorageVolume
from apps.storage.selectors import pools_by_host

_POOL_ACTIONS = {
    "start": (services.start_pool, gettext_lazy("Pool %(pool)s started.")),
    "stop": (services.stop_pool, gettext_lazy("Pool %(pool)s stopped.")),
    "refresh": (services.refresh_pool, gettext_lazy("Pool %(pool)s refreshed.")),
}


def _pool(request: HttpRequest, pk: int, privilege: str | None = None) -> StoragePool:
    return get_object_or_deny(StoragePool.objects.select_related("host"), request.user, pk, privilege)


def _volume(request: HttpRequest, pk: int, privilege: str | None = None) -> StorageVolume:
    return get_object_or_deny(StorageVolume.objects.select_related("pool__host"), request.user, pk, privilege)


def _form_error(form) -> str:
    return " ".join(str(error) for errors in form.errors.values() for error in errors)


@login_required
@require_GET
def storage_list(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "storage/list.html",
        {
            "hosts": pools_by_host(request.user),
            "can_add": Host.objects.restrict(request.user, "storage.manage").exists(),
        },
    )


def _upload_labels() -> dict[str, str]:
    """What the upload script says, translated here ({size}, {free}, {limit} are filled in there)."""
    return {
        "choose": _("Choose a file first."),
        "resuming": _("The connection broke; resuming at {done}…"),
        "too_big": _("The file is {size}; the pool has only {free} free."),
        "over_limit": _("The file is {size}; uploads are limited to {limit}."),
        "sending": _("Sending {done} of {total} ({percent}%, {speed}/s)"),
        "writing": _("All bytes sent; the host is writing the rest…"),
        "done": _("Uploaded. Reloading…"),
        "failed": _("Upload failed:"),
        "cancelled": _("Upload cancelled; nothing was created."),
        "network": _("The connection to the panel broke; nothing was created."),
    }


@login_required
@require_GET
def pool_detail(request: HttpRequest, pk: int) -> HttpResponse:
    pool = _pool(request, pk)
    uploads = list(pool.uploads.all())
    uploading = {upload.name for upload in uploads}
    volumes = [volume for volume in pool.volumes.all() if volume.name not in uploading]
    return render(
        request,
        "storage/pool.html",
        {
            "pool": pool,
            "volumes": volumes,
            "uploads": uploads,
            "can_manage": has_privilege(request.user, pool.host, "storage.manage"),
            "volume_form": VolumeForm(),
            "resize_form": ResizeForm(auto_id=False),
            "upload_limit": transfers.upload_limit_bytes(),
            "upload_labels": _upload_labels(),
            "allocated_total": sum(volume.allocation_bytes for volume in volumes),
            "capacity_total": sum(volume.capacity_bytes for volume in volumes),
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def pool_add(request: HttpRequest) -> HttpResponse:
    hosts = Host.objects.restrict(request.user, "storage.manage").defer("pools", "networks")
    if not hosts.exists():
        raise PermissionDenied
    chosen = request.GET.get("host", "")
    only = list(hosts[:2])
    initial = {"host": chosen} if chosen.isdigit() else {"host": only[0].pk} if len(only) == 1 else {}
    form = PoolForm(request.POST or None, hosts=hosts, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            pool = services.create_pool(
                form.cleaned_data["host"],
                actor=request.user,
                name=form.cleaned_data["name"],
                path=form.cleaned_data["path"],
                pool_type=form.cleaned_data["type"],
                autostart=form.cleaned_data["autostart"],
                client_address=client_address(request),
            )
        except ServiceError as error:
            form.add_error(None, error.message)
        else:
            return action_response(
                request,
                ok=True,
                message=_("Pool %(pool)s created at %(path)s.") % {"pool": pool.name, "path": pool.path},
                fallback_url=reverse("storage:pool-detail", args=[pool.pk]),
            )
    pool_types = {row.host_id: row.pool_types for row in HostStorage.objects.filter(host__in=hosts)}
    return render(
        request,
        "storage/pool_add.html",
        {"form": form, "pool_types": [(host, pool_types.get(host.pk, [])) for host in hosts]},
        status=400 if form.errors else 200,
    )


def _act(request: HttpRequest, fallback: str, work: Callable[[], str]) -> HttpResponse:
    """Run one service call: its ServiceError is shown as the refusal, its return as the success."""
    try:
        message = work()
    except ServiceError as error:
        return action_response(request, ok=False, message=error.message, fallback_url=fallback)
    return action_response(request, ok=True, message=message, fallback_url=fallback)


@login_required
@require_POST
def pool_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    if action not in _POOL_ACTIONS:
        raise Http404
    service, done = _POOL_ACTIONS[action]
    pool = _pool(request, pk, "storage.manage")

    def work() -> str:
        service(pool, actor=request.user, client_address=client_address(request))
        return done % {"pool": pool.name}

    return _act(request, reverse("storage:pool-detail", args=[pool.pk]), work)


@login_required
@require_POST
def pool_autostart(request: HttpRequest, pk: int) -> HttpResponse:
    pool = _pool(request, pk, "storage.manage")
    enabled = request.POST.get("enabled") == "1"

    def work() -> str:
        services.set_pool_autostart(pool, enabled, actor=request.user, client_address=client_address(request))
        message = _("Pool %(pool)s now starts with the host.") if enabled else _("Pool %(pool)s no longer autostarts.")
        return message % {"pool": pool.name}

    return _act(request, reverse("storage:pool-detail", args=[pool.pk]), work)


@login_required
@require_POST
def pool_delete(request: HttpRequest, pk: int) -> HttpResponse:
    pool = _pool(request, pk, "storage.manage")
    try:
        services.delete_pool(pool, actor=request.user, client_address=client_address(request))
    except ServiceError as error:
        return action_response(
            request, ok=False, message=error.message, fallback_url=reverse("storage:pool-detail", args=[pool.pk])
        )
    return action_response(
        request,
        ok=True,
        message=_("Pool %(pool)s and its empty directory were deleted.") % {"pool": pool.name},
        fallback_url=reverse("storage:list"),
    )


@login_required
@require_POST
def host_refresh(request: HttpRequest, host_pk: int) -> HttpResponse:
    host = get_object_or_deny(Host.objects.all(), request.user, host_pk, "storage.manage")

    def work() -> str:
        pools = services.refresh_host_pools(host, actor=request.user, client_address=client_address(request))
        return _("%(host)s: %(count)d pool(s) rescanned.") % {"host": host.name, "count": len(pools)}

    return _act(request, reverse("storage:list"), work)


@login_required
@require_POST
def volume_create(request: HttpRequest, pk: int) -> HttpResponse:
    pool = _pool(request, pk, "storage.manage")
    form = VolumeForm(request.POST)

    def work() -> str:
        if not form.is_valid():
            raise ServiceError(_form_error(form))
        volume = services.create_volume(
            pool,
            actor=request.user,
            name=form.cleaned_data["name"],
            fmt=form.cleaned_data["format"],
            capacity_bytes=form.cleaned_data["capacity"],
            client_address=client_address(request),
        )
        return _("Volume %(name)s created (%(format)s, %(size)d bytes, sparse).") % {
            "name": volume.name,
            "format": volume.format,
            "size": volume.capacity_bytes,
        }

    return _act(request, reverse("storage:pool-detail", args=[pool.pk]), work)


@login_required
@require_POST
def volume_resize(request: HttpRequest, pk: int) -> HttpResponse:
    volume = _volume(request, pk, "storage.manage")
    form = ResizeForm(request.POST)

    def work() -> str:
        if not form.is_valid():
            raise ServiceError(_form_error(form))
        grown = services.resize_volume(
            volume, form.cleaned_data["capacity"], actor=request.user, client_address=client_address(request)
        )
        return _("Volume %(name)s is now %(size)d bytes.") % {"name": grown.name, "size": grown.capacity_bytes}

    return _act(request, reverse("storage:pool-detail", args=[volume.pool_id]), work)


@login_required
@require_POST
def volume_delete(request: HttpRequest, pk: int) -> HttpResponse:
    volume = _volume(request, pk, "storage.manage")

    def work() -> str:
        services.delete_volume(volume, actor=request.user, client_address=client_address(request))
        return _("Volume %(name)s deleted.") % {"name": volume.name}

    return _act(request, reverse("storage:pool-detail", args=[volume.pool_id]), work)


@login_required
@require_POST
def upload_abort(request: HttpRequest, pk: int) -> HttpResponse:
    upload = get_object_or_deny(StorageUpload.objects.select_related("pool__host"), request.user, pk, "storage.manage")

    def work() -> str:
        transfers.abort_upload(upload, actor=request.user, client_address=client_address(request))
        return _("Upload of %(name)s aborted; its volume was deleted.") % {"name": upload.name}

    return _act(request, reverse("storage:pool-detail", args=[upload.pool_id]), work)
