"""Writes to accounts: roles, grants, API tokens, preferences. Each is audited."""

import secrets
from datetime import datetime

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.accounts.models import ApiToken, Grant, Role, User, token_digest
from apps.accounts.permissions import forget_access, has_privilege, held_privileges, parse_scope, token_privileges
from apps.accounts.privileges import BUILTIN_ROLES, PRIVILEGES
from apps.audit.services import record_event
from apps.core.errors import AccessDenied, ServiceError

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


def _token_privileges(*, actor, user: User, requested: list[str] | None) -> list[str]:
    """The privileges a new token of `user` may carry when `actor` asks for `requested` (empty: all).

    Unknown names are 400; names the user holds nowhere are 400; and an actor who is itself using a
    limited token cannot mint a broader one (403), so a token can never be used to escalate.
    """
    requested = sorted(set(requested or []))
    unknown = [name for name in requested if name not in PRIVILEGES]
    if unknown:
        raise ServiceError(_("Unknown privileges: %s") % ", ".join(unknown), status=400, code="unknown-privilege")
    not_held = sorted(set(requested) - held_privileges(user))
    if not_held:
        raise ServiceError(
            _("%(user)s does not hold these privileges: %(names)s")
            % {"user": user.username, "names": ", ".join(not_held)},
            status=400,
            code="privilege-not-held",
        )
    ceiling = token_privileges(actor) if actor is not None else None
    if ceiling is not None:
        if not requested:
            return sorted(ceiling)
        if not set(requested) <= ceiling:
            raise ServiceError(
                _("A token cannot create a token with privileges it does not have itself."),
                status=403,
                code="forbidden",
            )
    return requested


@transaction.atomic
def create_api_token(
    *,
    actor,
    user: User,
    name: str = "",
    expires_at: datetime | None = None,
    privileges: list[str] | None = None,
) -> tuple[ApiToken, str]:
    """A new token for `user`: returns the row and the secret, which is never stored or shown again.

    `actor` None is the command line. Anyone else needs `user.manage` on "/" to make a token for
    somebody other than themselves.
    """
    if actor is not None and actor.pk != user.pk and not has_privilege(actor, None, "user.manage"):
        raise AccessDenied(_("You may only create tokens for yourself."))
    if expires_at is not None and expires_at <= timezone.now():
        raise ServiceError(_("The expiry must be in the future."), status=400, code="invalid-expiry")
    privileges = _token_privileges(actor=actor, user=user, requested=privileges)
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user,
        name=name,
        prefix=secret[: len(TOKEN_PREFIX) + 6],
        digest=token_digest(secret),
        expires_at=expires_at,
        privileges=privileges,
    )
    record_event(
        actor=actor,
        verb="token.create",
        target=token,
        detail={
            "user": user.username,
            "name": name,
            "expires_at": expires_at and expires_at.isoformat(),
            "privileges": privileges,
        },
    )
    return token, secret


@transaction.atomic
def revoke_api_token(token: ApiToken, *, actor) -> ApiToken:
    """Revoke `token` now (its next request is 401); revoking twice keeps the first time."""
    token = ApiToken.objects.select_for_update().get(pk=token.pk)
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        record_event(actor=actor, verb="token.revoke", target=token, detail={"user": token.user.username})
    return token


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
