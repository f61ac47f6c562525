"""Writes to hosts: add, probe (refresh), remove, and the reachability the listener observes."""

import contextlib
from dataclasses import asdict
from urllib.parse import parse_qsl, urlsplit

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.accounts.models import Grant
from apps.accounts.permissions import has_privilege
from apps.audit.choices import AuditResult
from apps.audit.services import record_event
from apps.core.errors import AccessDenied, ServiceError, from_hypervisor
from apps.hosts.choices import HostStatus
from apps.hosts.live import publish_host
from apps.hosts.models import Host
from apps.storage.sync import sync_pools
from kvmpanel.virt import host as virt_host
from kvmpanel.virt.connection import pool
from kvmpanel.virt.errors import HypervisorError

_SCHEMES = {"qemu", "qemu+unix", "qemu+ssh", "qemu+tls", "qemu+tcp", "test"}
# Query parameters libvirt would pass to a shell or a helper (command=, netcat=) are refused:
# a host URI must never become a way to run a program on the panel's machine.
_SAFE_PARAMETERS = {"socket", "keyfile", "known_hosts", "known_hosts_verify", "pkipath", "no_verify", "no_tty", "mode"}


def validate_uri(uri: str) -> str:
    uri = uri.strip()
    parts = urlsplit(uri)
    if parts.scheme not in _SCHEMES:
        raise ServiceError(
            _("Unsupported URI scheme %(scheme)r: use qemu:///system, qemu+unix, qemu+ssh or qemu+tls.")
            % {"scheme": parts.scheme}
        )
    if parts.scheme == "test" and not settings.KVMPANEL_ALLOW_TEST_DRIVER:
        raise ServiceError(_("The test:/// driver is for the test suite only."))
    if parts.scheme.startswith("qemu") and parts.path not in {"/system", "/session"}:
        raise ServiceError(_("A QEMU URI ends in /system (or /session), e.g. qemu+ssh://root@host/system."))
    unsafe = sorted({key for key, _value in parse_qsl(parts.query)} - _SAFE_PARAMETERS)
    if unsafe:
        raise ServiceError(_("URI parameters not allowed: %(names)s.") % {"names": ", ".join(unsafe)})
    return uri


def _apply_probe(host: Host) -> None:
    """Copy a fresh probe into the capability columns (nested dataclasses become JSON lists)."""
    probed = asdict(virt_host.probe(host.uri))
    for field in Host.CAPABILITY_FIELDS:
        value = probed[field]
        setattr(host, field, list(value) if isinstance(value, tuple) else value)
    host.probed_at = timezone.now()


def add_host(*, actor, name: str, uri: str, path_map: dict[str, str] | None = None) -> Host:
    """Connect, probe, then save: a host that cannot be reached is not added."""
    if not has_privilege(actor, None, "host.manage"):
        raise AccessDenied()
    uri = validate_uri(uri)
    if Host.objects.filter(uri=uri).exists():
        raise ServiceError(_("A host with this URI is already registered."), status=409)
    if Host.objects.filter(name=name).exists():
        raise ServiceError(_("A host named %(name)s already exists.") % {"name": name}, status=409)
    host = Host(name=name, uri=uri, path_map=path_map or {})
    try:
        _apply_probe(host)
    except HypervisorError as error:
        record_event(
            actor=actor,
            verb="host.add",
            result=AuditResult.FAILED,
            message=error.message,
            detail={"name": name, "uri": uri},
        )
        raise from_hypervisor(error, host_name=name) from error
    now = timezone.now()
    host.status, host.status_changed_at, host.last_seen_at = HostStatus.UP, now, now
    with transaction.atomic():
        host.save()
        record_event(actor=actor, verb="host.add", target=host, detail={"uri": uri})
        publish_host(host)
    # Its pools and volumes too, so forms and validation that read the storage inventory work at once;
    # a failure here leaves the host added (the next refresh syncs again).
    with contextlib.suppress(HypervisorError):
        sync_pools(host)
    return host


def refresh_host(host: Host, *, actor=None) -> Host:
    """Probe capabilities again (`virsh capabilities`, `nodeinfo`, `version`, `pool-list`, `net-list`)."""
    if actor is not None and not has_privilege(actor, host, "host.manage"):
        raise AccessDenied()
    try:
        _apply_probe(host)
        sync_pools(host)  # the storage inventory (apps/storage) is refreshed with the host
    except HypervisorError as error:
        if error.permanent:
            _set_status(host, HostStatus.ERROR, error.message)
        else:
            mark_host_unreachable(host, error.message)
        raise from_hypervisor(error, host_name=host.name) from error
    with transaction.atomic():
        host.save(
            update_fields=[*Host.CAPABILITY_FIELDS, "probed_at"]
        )  # status belongs to _set_status, not to the probe
        if actor is not None:
            record_event(actor=actor, verb="host.refresh", target=host)
    mark_host_reachable(host)
    return host


def remove_host(host: Host, *, actor) -> None:
    """Forget a host (its libvirt is untouched); refused while it still has VMs in the inventory."""
    if not has_privilege(actor, host, "host.manage"):
        raise AccessDenied()
    if host.vms.filter(missing=False).exists():
        raise ServiceError(_("The host still has VMs in the inventory; move or delete them first."), status=409)
    with transaction.atomic():
        record_event(actor=actor, verb="host.remove", target=host, detail={"uri": host.uri})
        # Grants on the host and on its (missing) VMs go with them: a later object must not inherit them.
        scopes = [host.scope, *(vm.scope for vm in host.vms.all())]
        Grant.objects.filter(scope__in=scopes).delete()
        host.vms.all().delete()
        host.delete()
    pool.drop(host.uri)


def _set_status(host: Host, status: str, message: str) -> None:
    now = timezone.now()
    fields = {"last_seen_at": now} if status == HostStatus.UP else {}
    # Only a change of status is written with its message: a host that stays unreachable is not
    # rewritten (or audited) on every retry.
    if host.status != status:
        fields |= {"status": status, "status_message": message[:500], "status_changed_at": now}
    if not fields:
        return
    with transaction.atomic():
        Host.objects.filter(pk=host.pk).update(**fields)
        for key, value in fields.items():
            setattr(host, key, value)
        if "status" in fields:
            record_event(actor=None, verb=f"host.{status}", target=host, message=message)
            publish_host(host)


def mark_host_reachable(host: Host) -> None:
    _set_status(host, HostStatus.UP, "")


def mark_host_unreachable(host: Host, message: str) -> None:
    _set_status(host, HostStatus.UNREACHABLE, message)
