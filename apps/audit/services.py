from typing import Any

from django.db.models import Model

from apps.audit.choices import AuditResult
from apps.audit.models import AuditEvent


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
