"""Writes an administrator makes: users, groups, custom roles, and grants with delegation (issue #5).

Every function takes `actor`, runs in a transaction and writes an audit event. Managing users and
groups needs `user.manage` on "/". A grant on a scope may be made (or revoked) by someone holding
`user.manage` on that scope, or by someone holding every privilege of the role there: delegation
without escalation (a VM's owner may share VMUser on it, never Operator).
"""

import secrets

from django.apps import apps
from django.contrib.auth.models import Group
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Model
from django.utils.translation import gettext as _

from apps.accounts.models import Grant, Role, User
from apps.accounts.permissions import ROOT, forget_access, has_privilege, parse_scope
from apps.accounts.privileges import PRIVILEGES
from apps.accounts.services import grant_role
from apps.audit.services import record_event
from apps.core.errors import AccessDenied, ServiceError

MANAGE = "user.manage"


def require_manager(actor) -> None:
    """403 unless `actor` holds `user.manage` on "/" (users, groups and roles are global)."""
    if not has_privilege(actor, None, MANAGE):
        raise AccessDenied(_("You need the user.manage privilege on / to do this."))


def _require_above(actor, user: User) -> None:
    # Managing a superuser would let a manager take over an account that holds more than they do.
    if user.is_superuser and not actor.is_superuser:
        raise AccessDenied(_("Only a superuser may change a superuser."))


def _check_password(password: str, user: User) -> None:
    try:
        validate_password(password, user)
    except ValidationError as error:
        raise ServiceError(" ".join(error.messages), status=400, code="invalid-password") from error


@transaction.atomic
def create_user(
    *, actor, username: str, email: str = "", password: str | None = None, first_name: str = "", last_name: str = ""
) -> tuple[User, str | None]:
    """A new active user. Without `password` one is generated and returned (shown once); else None."""
    require_manager(actor)
    if User.objects.filter(username__iexact=username).exists():
        raise ServiceError(_("A user named %s already exists.") % username, status=409, code="exists")
    user = User(username=username, email=email, first_name=first_name, last_name=last_name)
    generated = None
    if password is None:
        generated = password = secrets.token_urlsafe(12)
    _check_password(password, user)
    user.set_password(password)
    user.save()
    record_event(actor=actor, verb="user.create", target=user, detail={"username": username, "email": email})
    return user, generated


@transaction.atomic
def update_user(
    user: User, *, actor, email: str | None = None, first_name: str | None = None, last_name: str | None = None
) -> User:
    require_manager(actor)
    _require_above(actor, user)
    changes = {
        field: value
        for field, value in {"email": email, "first_name": first_name, "last_name": last_name}.items()
        if value is not None and getattr(user, field) != value
    }
    if changes:
        before = {field: getattr(user, field) for field in changes}
        for field, value in changes.items():
            setattr(user, field, value)
        user.save(update_fields=list(changes))
        record_event(actor=actor, verb="user.update", target=user, detail={"before": before, "after": changes})
    return user


@transaction.atomic
def set_user_active(user: User, *, actor, active: bool) -> User:
    """Disable or enable `user`. A disabled user's session is anonymous on its next request (Django's
    ModelBackend.get_user refuses inactive users), their API tokens answer 401
    (services.authenticate_api_token) and open consoles close at the next watchdog check
    (apps.console.services.still_allowed)."""
    require_manager(actor)
    _require_above(actor, user)
    if not active and user.pk == actor.pk:
        raise ServiceError(_("You cannot disable yourself."), status=409, code="self")
    user = User.objects.select_for_update().get(pk=user.pk)
    if user.is_active != active:
        user.is_active = active
        user.save(update_fields=["is_active"])
        record_event(actor=actor, verb="user.enable" if active else "user.disable", target=user)
    forget_access(user)
    return user


@transaction.atomic
def reset_password(user: User, *, actor, password: str | None = None) -> str | None:
    """Set `password` (validated by AUTH_PASSWORD_VALIDATORS) or a generated one, which is returned once."""
    require_manager(actor)
    _require_above(actor, user)
    generated = None
    if password is None:
        generated = password = secrets.token_urlsafe(12)
    _check_password(password, user)
    user.set_password(password)
    user.save(update_fields=["password"])
    record_event(actor=actor, verb="user.reset_password", target=user, detail={"generated": generated is not None})
    return generated


def _members(ids: list[int]) -> list[User]:
    users = list(User.objects.filter(pk__in=set(ids)))
    if len(users) != len(set(ids)):
        raise ServiceError(_("Unknown users in the member list."), status=400, code="unknown-user")
    return users


@transaction.atomic
def create_group(*, actor, name: str, members: list[int] | None = None) -> Group:
    require_manager(actor)
    if Group.objects.filter(name=name).exists():
        raise ServiceError(_("A group named %s already exists.") % name, status=409, code="exists")
    group = Group.objects.create(name=name)
    users = _members(members or [])
    group.user_set.set(users)
    record_event(actor=actor, verb="group.create", target=group, detail={"members": sorted(u.username for u in users)})
    return group


@transaction.atomic
def update_group(group: Group, *, actor, name: str | None = None, members: list[int] | None = None) -> Group:
    require_manager(actor)
    detail = {}
    if name is not None and name != group.name:
        if Group.objects.filter(name=name).exclude(pk=group.pk).exists():
            raise ServiceError(_("A group named %s already exists.") % name, status=409, code="exists")
        detail["name"] = {"before": group.name, "after": name}
        group.name = name
        group.save(update_fields=["name"])
    if members is not None:
        before = sorted(group.user_set.values_list("username", flat=True))
        users = _members(members)
        group.user_set.set(users)
        detail["members"] = {"before": before, "after": sorted(u.username for u in users)}
    if detail:
        record_event(actor=actor, verb="group.update", target=group, detail=detail)
    return group


@transaction.atomic
def delete_group(group: Group, *, actor) -> None:
    """Delete `group`; its grants go with it."""
    require_manager(actor)
    record_event(actor=actor, verb="group.delete", target=group, detail={"name": group.name})
    group.delete()


def _privilege_list(privileges: list[str]) -> list[str]:
    unknown = sorted(set(privileges) - set(PRIVILEGES))
    if unknown:
        raise ServiceError(_("Unknown privileges: %s") % ", ".join(unknown), status=400, code="unknown-privilege")
    return sorted(set(privileges))


def _require_custom(role: Role) -> None:
    if role.builtin:
        raise ServiceError(_("Built-in roles cannot be changed."), status=409, code="builtin")


@transaction.atomic
def create_role(*, actor, name: str, privileges: list[str], description: str = "") -> Role:
    require_manager(actor)
    if Role.objects.filter(name__iexact=name).exists():
        raise ServiceError(_("A role named %s already exists.") % name, status=409, code="exists")
    role = Role.objects.create(name=name, description=description, privileges=_privilege_list(privileges))
    record_event(actor=actor, verb="role.create", target=role, detail={"privileges": role.privileges})
    return role


@transaction.atomic
def update_role(
    role: Role, *, actor, name: str | None = None, privileges: list[str] | None = None, description: str | None = None
) -> Role:
    require_manager(actor)
    _require_custom(role)
    before = {"name": role.name, "privileges": role.privileges, "description": role.description}
    if name is not None and name != role.name:
        if Role.objects.filter(name__iexact=name).exclude(pk=role.pk).exists():
            raise ServiceError(_("A role named %s already exists.") % name, status=409, code="exists")
        role.name = name
    if privileges is not None:
        role.privileges = _privilege_list(privileges)
    if description is not None:
        role.description = description
    role.save()
    after = {"name": role.name, "privileges": role.privileges, "description": role.description}
    if after != before:
        record_event(actor=actor, verb="role.update", target=role, detail={"before": before, "after": after})
    return role


@transaction.atomic
def delete_role(role: Role, *, actor) -> None:
    require_manager(actor)
    _require_custom(role)
    if role.grants.exists():
        raise ServiceError(_("The role is still granted; revoke its grants first."), status=409, code="in-use")
    record_event(actor=actor, verb="role.delete", target=role, detail={"name": role.name})
    role.delete()


# Scope kinds and the model each names; a kind whose model is not installed yet names nothing.
_SCOPE_MODELS = {"vms": "vms.VirtualMachine", "hosts": "hosts.Host", "projects": "accounts.Project"}


def scope_object(scope: str) -> Model | None:
    """The object a scope names (None for "/"); 400 for a malformed scope or a missing object."""
    try:
        kind, object_id = parse_scope(scope)
    except ValueError as error:
        raise ServiceError(str(error), status=400, code="invalid-scope") from error
    if kind == ROOT:
        return None
    try:
        model = apps.get_model(_SCOPE_MODELS[kind])
    except (KeyError, LookupError):
        model = None
    obj = model.objects.filter(pk=object_id).first() if model is not None else None
    if obj is None:
        raise ServiceError(_("Nothing exists at scope %s.") % scope, status=400, code="invalid-scope")
    return obj


def may_delegate(actor, role: Role, scope: str) -> bool:
    """May `actor` grant or revoke `role` on `scope`? `user.manage` there, or every privilege of the role there.

    NoAccess has no privileges, so only a manager may hand it out (it takes access away).
    """
    obj = scope_object(scope)
    if has_privilege(actor, obj, MANAGE):
        return True
    return bool(role.privileges) and all(has_privilege(actor, obj, privilege) for privilege in role.privileges)


@transaction.atomic
def delegate_grant(
    *, actor, role: Role, scope: str, user: User | None = None, group: Group | None = None, propagate: bool = True
) -> Grant:
    """Grant `role` on `scope` to a user or a group, refused (403) when it would give more than `actor` holds."""
    if (user is None) == (group is None):
        raise ServiceError(_("Grant to a user or to a group, not both."), status=400, code="invalid")
    if not may_delegate(actor, role, scope):
        raise AccessDenied(
            _("You may only grant roles whose privileges you hold on %(scope)s (%(role)s has more).")
            % {"scope": scope, "role": role.name}
        )
    return grant_role(actor=actor, role=role, scope=scope, user=user, group=group, propagate=propagate)


@transaction.atomic
def revoke_grant(grant: Grant, *, actor) -> None:
    """Delete `grant` (same rule as granting). The gate reads grants on every request, so it takes effect
    on the next one; open consoles close at their next re-check (apps.console.services.still_allowed)."""
    if not may_delegate(actor, grant.role, grant.scope):
        raise AccessDenied(_("You may only revoke roles whose privileges you hold on that scope."))
    record_event(
        actor=actor,
        verb="grant.delete",
        target=grant,
        detail={
            "role": grant.role.name,
            "scope": grant.scope,
            "user": grant.user and grant.user.username,
            "group": grant.group and grant.group.name,
        },
    )
    grant.delete()
