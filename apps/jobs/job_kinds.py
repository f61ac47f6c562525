"""The built-in job kinds. Each validates its parameters in the service (before a row exists) and
runs idempotent steps in the worker, cleaning up what it created when it fails."""

from typing import Any

from django.utils.translation import gettext as _

from apps.core.errors import ServiceError, from_hypervisor
from apps.jobs.registry import JobKind, register
from kvmpanel.virt import host as virt_host
from kvmpanel.virt import storage
from kvmpanel.virt.errors import HypervisorError
from kvmpanel.virt.xml import NAME_PATTERN

VOLUME_FORMATS = ("qcow2", "raw")


def _invalid(message: str, code: str = "invalid") -> ServiceError:
    return ServiceError(message, status=400, code=code)


def validate_volume_name(name: object) -> str:
    if not isinstance(name, str) or not name.isascii() or not NAME_PATTERN.match(name) or ".." in name:
        raise _invalid(
            _(
                "A volume name is 1-63 ASCII characters: letters, digits, '.', '_' or '-', starting with a "
                "letter or digit, and never '..'."
            ),
            code="invalid-name",
        )
    return name


def _validate_volume_create(host, params: dict[str, Any]) -> dict[str, Any]:
    name = validate_volume_name(params.get("name"))
    fmt = params.get("format", "qcow2")
    if fmt not in VOLUME_FORMATS:
        raise _invalid(_("The volume format must be qcow2 or raw."))
    size = params.get("capacity_bytes")
    if isinstance(size, bool) or not isinstance(size, int):
        raise _invalid(_("The volume size must be a whole number of bytes."), code="invalid-size")
    if size <= 0:
        raise _invalid(_("The volume size must be greater than zero."), code="invalid-size")
    pool_name = params.get("pool")
    if not isinstance(pool_name, str) or not pool_name:
        raise _invalid(_("Choose a storage pool."))
    try:
        pools = {pool.name: pool for pool in virt_host.list_pools(host.uri)}
        found = pools.get(pool_name)
        if found is None or not found.active:
            raise _invalid(
                _("Host %(host)s has no active storage pool named %(pool)s.") % {"host": host.name, "pool": pool_name}
            )
        if size > found.available_bytes:
            raise _invalid(
                _("Pool %(pool)s has only %(available)d bytes free; the volume needs %(size)d.")
                % {"pool": pool_name, "available": found.available_bytes, "size": size},
                code="invalid-size",
            )
        if storage.find_volume_in_pool(host.uri, pool_name, name) is not None:
            raise ServiceError(
                _("Pool %(pool)s already holds a volume named %(name)s.") % {"pool": pool_name, "name": name},
                status=409,
                code="exists",
            )
    except HypervisorError as error:
        raise from_hypervisor(error, host_name=host.name) from error
    return {"pool": pool_name, "name": name, "format": fmt, "capacity_bytes": size}


def _run_volume_create(ctx) -> dict[str, Any]:
    params = ctx.job.params
    uri = ctx.job.host.uri
    ctx.check_cancel()
    ctx.progress(percent=0, bytes_done=0, bytes_total=params["capacity_bytes"], phase="create")
    ctx.log(
        f"Creating {params['format']} volume {params['name']} ({params['capacity_bytes']} bytes)"
        f" in pool {params['pool']}"
    )
    if storage.find_volume_in_pool(uri, params["pool"], params["name"]) is not None:
        raise HypervisorError(_("Pool %(pool)s already holds a volume named %(name)s.") % params, code="exists")
    path = storage.create_volume(
        uri, params["pool"], params["name"], capacity_bytes=params["capacity_bytes"], fmt=params["format"]
    )
    ctx.remember(created=True)
    ctx.log(f"Created {path}")
    ctx.progress(percent=100, bytes_done=params["capacity_bytes"], phase="done")
    return {"path": path}


def _cleanup_volume_create(ctx) -> None:
    if ctx.state.get("created"):
        params = ctx.job.params
        storage.delete_volume(ctx.job.host.uri, params["pool"], params["name"])
        ctx.log(f"Deleted {params['name']} again")


VOLUME_CREATE = register(
    JobKind(
        name="volume.create",
        privilege="storage.manage",
        target="host",
        validate=_validate_volume_create,
        run=_run_volume_create,
        cleanup=_cleanup_volume_create,
    )
)
