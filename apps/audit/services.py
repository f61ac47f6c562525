from collections.abc import Callable
from typing import Any, TypeVar

from django.db.models import Model

from apps.audit.choices import AuditResult
from apps.audit.models import AuditEvent
from apps.core.errors import from_hypervisor
from kvmpanel.virt.errors import HypervisorError

T = TypeVar("T")


def record_event(
    *,
    actor,
    verb: str,
    target: Model | None = None,
    result: str = AuditResult.OK,
    message: str = "",
    detail: dict[str, Any] | None = None,
    client_address: str | None = None,
) -> AuditEvent:
    """Write one audit event. `actor` may be None for the system (the inventory listener, setup)."""
    authenticated = actor is not None and getattr(actor, "is_authenticated", False)
    return AuditEvent.objects.create(
        actor=actor if authenticated else None,
        actor_name=actor.get_username() if authenticated else "system",
        verb=verb,
        target_type=target._meta.model_name if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        target_repr=str(target)[:200] if target is not None else "",
        result=result,
        message=message[:2000],
        detail=detail or {},
        client_address=client_address,
    )


def audited_hypervisor_write(
    operation: Callable[[], T],
    *,
    actor,
    verb: str,
    target: Model,
    host_name: str,
    detail: dict | None = None,
    client_address: str | None = None,
    on_failure: Callable[[HypervisorError], None] | None = None,
) -> T:
    """Run a hypervisor write; a failure is audited as FAILED and becomes a ServiceError naming the host.
    `on_failure` runs first (e.g. a storage resync when the row outlived its pool or volume)."""
    try:
        return operation()
    except HypervisorError as error:
        record_event(
            actor=actor,
            verb=verb,
            target=target,
            result=AuditResult.FAILED,
            message=error.message,
            detail=detail,
            client_address=client_address,
        )
        if on_failure is not None:
            on_failure(error)
        raise from_hypervisor(error, host_name=host_name) from error
