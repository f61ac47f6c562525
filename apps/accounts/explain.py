"""Why a user may or may not do each thing on an object: the gate's decision, explained (issue #5).

`explain(user, obj)` answers, for every privilege of the catalogue, allowed or not and why: the
deciding grant (the user's own or via which group, role, scope, propagate), the ancestor scope it is
inherited from, and what lost to it (a group's grant beaten by the user's own grant on the same scope,
a shallower grant beaten by a deeper one, a role beaten by NoAccess, a grant that does not propagate).

It cannot disagree with the gate: it asks `AccessSnapshot.resolve` (apps/accounts/permissions.py), the
same resolution `has_privilege` and the list pages use, and applies the token ceiling, superuser and
inactive rules in the same order as `has_privilege`. Only naming the grants (usernames, group names)
is done here, with one extra query.
"""

from dataclasses import dataclass, field

from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db.models import Model
from django.http import Http404
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext as _

from apps.accounts.permissions import (
    ROOT,
    AccessSnapshot,
    Decision,
    access_for,
    has_privilege,
    parse_scope,
    scope_chain,
)
from apps.accounts.privileges import NO_ACCESS, PRIVILEGES
from apps.core.errors import AccessDenied, ServiceError

MANAGE = "user.manage"

# Why a privilege is or is not held.
SUPERUSER = "superuser"
INACTIVE = "inactive"
PRIVILEGE_CEILING = "token"  # an API token limited to other privileges
GRANTED = "granted"
DENIED_BY_NO_ACCESS = "no-access"
NOT_IN_ROLE = "not-in-role"
NO_GRANT = "no-grant"

# Why a grant on the object's chain did not decide.
USER_OVER_GROUP = "user-over-group"
DEEPER = "deeper"
BEATEN_BY_NO_ACCESS = "no-access"
NOT_PROPAGATING = "not-propagating"

# Scope kinds and the model each names.
SCOPE_MODELS = {"vms": "vms.VirtualMachine", "hosts": "hosts.Host", "projects": "accounts.Project"}


def scope_text(key: tuple[str, int | None]) -> str:
    kind, object_id = key
    return "/" if kind == ROOT else f"/{kind}/{object_id}"


def object_at(scope: str) -> Model | None:
    """The object a scope names (None for "/"). ValueError for a malformed scope, Http404 when nothing is there."""
    kind, object_id = parse_scope(scope)
    if kind == ROOT:
        return None
    try:
        model = apps.get_model(SCOPE_MODELS[kind])
    except (KeyError, LookupError) as error:
        raise Http404 from error
    obj = model.objects.filter(pk=object_id).first()
    if obj is None:
        raise Http404
    return obj


@dataclass(frozen=True)
class GrantRef:
    """One grant, named: whose (the user's own, or a group's), which role, where, and whether it propagates."""

    id: int
    role: str
    scope: str
    propagate: bool
    group: str | None  # the group's name for a grant via a group; None for the user's own grant
    privileges: frozenset[str]

    @property
    def no_access(self) -> bool:
        return self.role == NO_ACCESS

    @property
    def via(self) -> str:
        if self.group is None:
            return _("own grant")
        return _("via group %(group)s") % {"group": self.group}

    def describe(self) -> str:
        text = _("%(role)s on %(scope)s (%(via)s)") % {"role": self.role, "scope": self.scope, "via": self.via}
        if not self.propagate:
            text += " " + _("[does not propagate]")
        return text

    def as_dict(self) -> dict:
        return {
            "id": self.id,
            "role": self.role,
            "scope": self.scope,
            "propagate": self.propagate,
            "group": self.group,
            "via": "group" if self.group is not None else "user",
        }


@dataclass(frozen=True)
class Override:
    """A grant on the object's chain that did not decide, and why."""

    grant: GrantRef
    reason: str  # USER_OVER_GROUP, DEEPER, BEATEN_BY_NO_ACCESS or NOT_PROPAGATING
    text: str

    def as_dict(self) -> dict:
        return {"grant": self.grant.as_dict(), "reason": self.reason, "text": self.text}


@dataclass(frozen=True)
class PrivilegeExplanation:
    privilege: str
    description: str
    allowed: bool
    reason: str  # SUPERUSER, INACTIVE, PRIVILEGE_CEILING, GRANTED, DENIED_BY_NO_ACCESS, NOT_IN_ROLE or NO_GRANT
    grants: tuple[GrantRef, ...]  # the deciding grants that give it, or the NoAccess grants that take it away
    would_allow: tuple[Override, ...]  # grants that hold it but did not decide
    text: str

    def as_dict(self) -> dict:
        return {
            "privilege": self.privilege,
            "allowed": self.allowed,
            "reason": self.reason,
            "grants": [grant.as_dict() for grant in self.grants],
            "overridden": [override.as_dict() for override in self.would_allow],
            "text": self.text,
        }


@dataclass(frozen=True)
class Explanation:
    username: str
    scope: str  # the object's own scope ("/" for none)
    chain: tuple[str, ...]  # deepest first, "/" last: where grants are looked for
    status: str  # SUPERUSER, INACTIVE, GRANTED (a level decided) or NO_GRANT
    deciding_scope: str | None
    deciding: tuple[GrantRef, ...]
    overridden: tuple[Override, ...]
    privileges: dict[str, PrivilegeExplanation] = field(default_factory=dict)
    summary: str = ""
    token_limited: bool = False

    @property
    def inherited_from(self) -> str | None:
        """The ancestor scope the decision comes from; None when it is the object's own scope (or nothing decided)."""
        if self.deciding_scope is None or self.deciding_scope == self.scope:
            return None
        return self.deciding_scope

    @property
    def allowed(self) -> frozenset[str]:
        return frozenset(name for name, item in self.privileges.items() if item.allowed)

    def as_dict(self) -> dict:
        return {
            "user": self.username,
            "scope": self.scope,
            "chain": list(self.chain),
            "status": self.status,
            "deciding_scope": self.deciding_scope,
            "inherited_from": self.inherited_from,
            "deciding_grants": [grant.as_dict() for grant in self.deciding],
            "overridden": [override.as_dict() for override in self.overridden],
            "summary": self.summary,
            "privileges": [item.as_dict() for item in self.privileges.values()],
        }


def _names(snapshot: AccessSnapshot, chain: list[tuple[str, int | None]]) -> dict[int, str]:
    group_ids = {g.group_id for key in chain for g in snapshot.grants_at(key) if g.group_id is not None}
    if not group_ids:
        return {}
    return dict(Group.objects.filter(pk__in=group_ids).values_list("pk", "name"))


def _overrides(
    snapshot: AccessSnapshot, chain: list[tuple[str, int | None]], decision: Decision | None, ref
) -> list[Override]:
    """Every grant on the chain that did not decide, with the rule that set it aside."""
    overrides = []
    decided_at = scope_text(decision.scope) if decision else None
    chosen_ids = {g.grant_id for g in decision.chosen} if decision else set()
    no_access = decision is not None and any(g.no_access for g in decision.chosen)
    for depth, key in enumerate(chain):
        for grant in snapshot.grants_at(key):
            named = ref(grant)
            if depth > 0 and not grant.propagate:
                text = _("%(grant)s applies only to %(scope)s itself, not below it.") % {
                    "grant": named.describe(),
                    "scope": named.scope,
                }
                overrides.append(Override(named, NOT_PROPAGATING, text))
            elif decision is None or depth < decision.depth:
                continue  # cannot happen: an applicable grant deeper than the decision would have decided
            elif depth > decision.depth:
                text = _("%(grant)s is overridden by the deeper grants on %(scope)s.") % {
                    "grant": named.describe(),
                    "scope": decided_at,
                }
                overrides.append(Override(named, DEEPER, text))
            elif grant.grant_id not in chosen_ids:
                text = _("%(grant)s is overridden by the user's own grant on the same scope.") % {
                    "grant": named.describe()
                }
                overrides.append(Override(named, USER_OVER_GROUP, text))
            elif no_access and not grant.no_access:
                text = _("%(grant)s is overridden by NoAccess on the same scope.") % {"grant": named.describe()}
                overrides.append(Override(named, BEATEN_BY_NO_ACCESS, text))
    return overrides


def _explain_privilege(
    privilege: str, decision: Decision | None, chosen: list[GrantRef], overrides: list[Override]
) -> PrivilegeExplanation:
    description = str(PRIVILEGES[privilege])
    would_allow = tuple(o for o in overrides if privilege in o.grant.privileges and not o.grant.no_access)
    if decision is None:
        text = _("Denied: no grant applies to this object or above it.")
        return PrivilegeExplanation(privilege, description, False, NO_GRANT, (), would_allow, text)
    if privilege in decision.privileges:
        giving = tuple(g for g in chosen if privilege in g.privileges)
        text = _("Allowed by %(grants)s.") % {"grants": "; ".join(g.describe() for g in giving)}
        if decision.depth > 0:
            text += " " + _("Inherited from %(scope)s.") % {"scope": scope_text(decision.scope)}
        return PrivilegeExplanation(privilege, description, True, GRANTED, giving, (), text)
    blockers = tuple(g for g in chosen if g.no_access)
    if blockers:
        text = _("Denied: %(grants)s beats every other role on its scope.") % {
            "grants": "; ".join(g.describe() for g in blockers)
        }
        return PrivilegeExplanation(privilege, description, False, DENIED_BY_NO_ACCESS, blockers, would_allow, text)
    text = _("Denied: the deciding grants (%(grants)s) do not include it.") % {
        "grants": "; ".join(g.describe() for g in chosen)
    }
    if would_allow:
        text += " " + _("Set aside: %(overridden)s") % {"overridden": " ".join(o.text for o in would_allow)}
    return PrivilegeExplanation(privilege, description, False, NOT_IN_ROLE, (), would_allow, text)


def explain(user, obj: Model | None) -> Explanation:
    """The gate's answer for `user` on `obj` (None: "/") for every privilege, with the reasons.

    Same order of rules as `has_privilege`: an API token's ceiling, then superuser, then inactive,
    then the grants resolved by `AccessSnapshot.resolve`.
    """
    chain = scope_chain(obj)
    scope = scope_text(chain[0])
    chain_text = tuple(scope_text(key) for key in chain)
    username = user.get_username() if getattr(user, "is_authenticated", False) else ""
    snapshot = access_for(user)
    limit = getattr(user, "token_privileges", None)
    base = {"username": username, "scope": scope, "chain": chain_text, "token_limited": limit is not None}

    def over_token(privilege: str) -> PrivilegeExplanation | None:
        if limit is None or privilege in limit:
            return None
        text = _("Denied: the API token this request uses is limited to other privileges.")
        return PrivilegeExplanation(privilege, str(PRIVILEGES[privilege]), False, PRIVILEGE_CEILING, (), (), text)

    if snapshot.everything or not snapshot.active:
        status = SUPERUSER if snapshot.everything else INACTIVE
        text = _("Allowed: superusers hold every privilege.") if snapshot.everything else None
        text = text or _("Denied: the account is disabled (or not signed in), so it holds no privilege.")
        privileges = {
            p: over_token(p) or PrivilegeExplanation(p, str(PRIVILEGES[p]), snapshot.everything, status, (), (), text)
            for p in PRIVILEGES
        }
        return Explanation(
            **base, status=status, deciding_scope=None, deciding=(), overridden=(), privileges=privileges, summary=text
        )

    group_names = _names(snapshot, chain)

    def ref(grant) -> GrantRef:
        return GrantRef(
            id=grant.grant_id,
            role=grant.role_name,
            scope=scope_text((grant.kind, grant.object_id)),
            propagate=grant.propagate,
            group=None if grant.group_id is None else group_names.get(grant.group_id, str(grant.group_id)),
            privileges=grant.privileges,
        )

    decision = snapshot.resolve(chain)
    chosen = [ref(g) for g in decision.chosen] if decision else []
    overrides = _overrides(snapshot, chain, decision, ref)
    privileges = {p: over_token(p) or _explain_privilege(p, decision, chosen, overrides) for p in PRIVILEGES}
    if decision is None:
        summary = _("No grant applies to %(scope)s or above it: nothing is allowed.") % {"scope": scope}
        status, deciding_scope = NO_GRANT, None
    else:
        deciding_scope = scope_text(decision.scope)
        summary = _("Decided on %(scope)s by %(grants)s.") % {
            "scope": deciding_scope,
            "grants": "; ".join(g.describe() for g in chosen),
        }
        if decision.depth > 0:
            summary += " " + _("Inherited from %(scope)s: no grant on a deeper scope applies.") % {
                "scope": deciding_scope
            }
        status = GRANTED
    return Explanation(
        **base,
        status=status,
        deciding_scope=deciding_scope,
        deciding=tuple(chosen),
        overridden=tuple(overrides),
        privileges=privileges,
        summary=summary,
    )


def sees(requester, obj: Model | None) -> bool:
    """May `requester` see `obj` at all (else it is 404 for them)? "/" is seen by everyone signed in;
    a project by user.manage holders on "/" and vm.view holders on it (apps/accounts/projects.py)."""
    if obj is None:
        return True
    view_privilege = getattr(obj, "view_privilege", None)
    if view_privilege is None:  # a project
        return has_privilege(requester, None, MANAGE) or has_privilege(requester, obj, "vm.view")
    return has_privilege(requester, obj, view_privilege)


def manages_access(requester, obj: Model | None) -> bool:
    """`user.manage` on the object's scope or above it: may see and change who has access to it."""
    return has_privilege(requester, obj, MANAGE)


def scope_for_request(requester, scope: str) -> Model | None:
    """The object at `scope` for someone asking about access to it: 400 malformed, 404 missing or invisible."""
    try:
        obj = object_at(scope or "/")
    except ValueError as error:
        raise ServiceError(str(error), status=400, code="invalid-scope") from error
    if not manages_access(requester, obj) and not sees(requester, obj):
        raise Http404
    return obj


def explanation_for(requester, obj: Model | None, *, user_id: int | None = None, username: str | None = None):
    """(user, explanation) of another user's access to `obj` — for holders of user.manage on its scope —
    or of one's own. Another user's is refused (403) before the account is looked up, so nobody probes
    for accounts; a missing account is 404."""
    own = (user_id is not None and user_id == requester.pk) or (
        username is not None and username == requester.get_username()
    )
    if not own and not manages_access(requester, obj):
        raise AccessDenied(_("Only holders of user.manage on this scope may look at another user's access."))
    users = get_user_model().objects
    user = get_object_or_404(users, pk=user_id) if user_id is not None else get_object_or_404(users, username=username)
    return user, explain(user, obj)
