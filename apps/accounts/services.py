"""Writes to accounts: roles, grants, API tokens, preferences. Each is audited."""

import secrets
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from apps.accounts.models import ApiToken, Grant, Role, User, token_digest
from apps.accounts.permissions import forget_access, parse_scope
from apps.accounts.privileges import BUILTIN_ROLES
from apps.audit.services import record_event

TOKEN_PREFIX = "kvp_"  # noqa: S105 - a public prefix that makes leaked tokens greppable, not a secret


def sync_builtin_roles() -> None:
    """Create or update the built-in roles so they always match the catalogue (runs after migrate)."""
    for name, privileges in BUILTIN_ROLES.items():
        Role.objects.update_or_create(name=name, defaults={"privileges": sorted(privileges), "builtin": True})


@transaction.atomic
def grant_role(
    *, actor, role: Role | str, scope: str, user: User | None = None, group=None, propagate: bool = True
) -> Grant:
    if isinstance(role, str):
        role = Role.objects.get(name=role)
    parse_scope(scope)
    grant, _created = Grant.objects.update_or_create(
        user=user, group=group, role=role, scope=scope, defaults={"propagate": propagate, "created_by": actor}
    )
    record_event(
        actor=actor,
        verb="grant.create",
        target=grant,
        detail={"role": role.name, "scope": scope, "user": user and user.username, "group": group and group.name},
    )
    if user is not None:
        forget_access(user)
    return grant


@transaction.atomic
def create_api_token(*, actor, user: User, name: str = "", expires_at: datetime | None = None) -> tuple[ApiToken, str]:
    """A new token for `user`: returns the row and the secret, which is never stored or shown again."""
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user, name=name, prefix=secret[: len(TOKEN_PREFIX) + 6], digest=token_digest(secret), expires_at=expires_at
    )
    record_event(actor=actor, verb="token.create", target=token, detail={"user": user.username, "name": name})
    return token, secret


def authenticate_api_token(secret: str) -> ApiToken | None:
    token = ApiToken.objects.select_related("user").filter(digest=token_digest(secret)).first()
    if token is None or not token.usable or not token.user.is_active:
        return None
    # Record use at most once a minute, so a busy client does not write on every request.
    now = timezone.now()
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token


@transaction.atomic
def set_language(*, actor: User, language: str) -> None:
    actor.language = language
    actor.save(update_fields=["language"])
    record_event(actor=actor, verb="user.set_language", target=actor, detail={"language": language})
