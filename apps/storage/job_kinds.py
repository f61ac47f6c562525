"""Storage job kinds: `volume.create` (for API clients that want a job; the pages create volumes
directly, it is fast). Validation runs in the request against the host as it is now; the worker
creates the volume, records that it did (so cleanup works even after a dead worker), and re-syncs
the pool's inventory rows."""

from typing import Any

from django.utils.translation import gettext as _

from apps.jobs.registry import JobKind, register
from apps.storage.services import validate_new_volume
from apps.storage.sync import resync_quietly
from kvmpanel.virt import storage
from kvmpanel.virt.errors import HypervisorError


def _validate_volume_create(host, params: dict[str, Any]) -> dict[str, Any]:
    return validate_new_volume(host, params)


def _run_volume_create(ctx) -> dict[str, Any]:
    params = ctx.job.params
    host = ctx.job.host
    ctx.check_cancel()
    ctx.progress(percent=0, bytes_done=0, bytes_total=params["capacity_bytes"], phase="create")
    ctx.log(
        f"Creating {params['format']} volume {params['name']} ({params['capacity_bytes']} bytes)"
        f" in pool {params['pool']}"
    )
    if storage.find_volume_in_pool(host.uri, params["pool"], params["name"]) is not None:
        raise HypervisorError(_("Pool %(pool)s already holds a volume named %(name)s.") % params, code="exists")
    path = storage.create_volume(
        host.uri, params["pool"], params["name"], capacity_bytes=params["capacity_bytes"], fmt=params["format"]
    )
    ctx.remember(created=True)
    ctx.log(f"Created {path}")
    resync_quietly(host, names=[params["pool"]])
    ctx.progress(percent=100, bytes_done=params["capacity_bytes"], phase="done")
    return {"path": path}


def _cleanup_volume_create(ctx) -> None:
    if ctx.state.get("created"):
        params = ctx.job.params
        storage.delete_volume(ctx.job.host.uri, params["pool"], params["name"])
        ctx.log(f"Deleted {params['name']} again")
        resync_quietly(ctx.job.host, names=[params["pool"]])


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
