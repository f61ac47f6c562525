"""The one authorization gate (DESIGN.md §4).

Grants give a role on a scope: "/", "/hosts/{id}", "/projects/{id}", "/vms/{id}". A VM's chain is
vms -> projects (when it is in one) -> hosts -> root. For a given object the decision is
taken at the deepest scope that has a grant applying to it (a grant applies to its own scope, and
below it only when it propagates). At that scope, the user's own grants beat their groups' grants,
and NoAccess among the chosen grants beats every other role. Superusers hold every privilege.

`restrict(queryset, user, privilege)` turns this into one SQL filter, used by every view, API
endpoint and consumer through `Model.objects.restrict(...)`. `has_privilege` answers for one object.
Invisible objects are 404 (`vm.view` / `host.view` missing); visible but not allowed is 403.

An API token may carry a privilege subset: the token authentication sets `user.token_privileges`
(a frozenset, or None for "all of the user's") on the user object it loads for that one request, and
both `has_privilege` and `restrict` intersect with it, so no view has to know about tokens.
"""

import re
from collections import defaultdict
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db.models import Model, Q, QuerySet
from django.shortcuts import get_object_or_404

from apps.accounts.privileges import NO_ACCESS, PRIVILEGES

ROOT = "root"
_SCOPE = re.compile(r"/(?P<kind>hosts|projects|vms)/(?P<id>[0-9]+)")


def parse_scope(scope: str) -> tuple[str, int | None]:
    """ "/" -> ("root", None); "/vms/5" -> ("vms", 5). ValueError for anything else."""
    if scope == "/":
        return ROOT, None
    match = _SCOPE.fullmatch(scope or "")
    if match is None:
        raise ValueError(f"Unknown scope {scope!r}: use '/', '/hosts/<id>', '/projects/<id>' or '/vms/<id>'.")
    return match["kind"], int(match["id"])


@dataclass(frozen=True)
class _Grant:
    kind: str
    object_id: int | None
    propagate: bool
    from_user: bool
    no_access: bool
    privileges: frozenset[str]
    # What apps/accounts/explain.py needs to name the grant; the gate itself never reads these.
    grant_id: int = 0
    role_name: str = ""
    group_id: int | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """Where the gate decided for one object: the deciding level's grants and what they give.

    `depth` is the index in the object's scope chain (0: the object's own scope), `chosen` the grants
    that decide there (the user's own when they have any at that level, else their groups'), and
    `privileges` what those give (nothing when NoAccess is among them).
    """

    depth: int
    scope: tuple[str, int | None]
    chosen: tuple[_Grant, ...]
    privileges: frozenset[str]


class AccessSnapshot:
    """A user's grants, loaded with one query, answering privilege questions in memory."""

    def __init__(self, user) -> None:
        self.everything = bool(user.is_active and user.is_superuser)
        self.active = bool(user.is_authenticated and user.is_active)
        self._by_scope: dict[tuple[str, int | None], list[_Grant]] = defaultdict(list)
        if not self.active or self.everything:
            return
        from apps.accounts.models import Grant

        group_ids = list(user.groups.values_list("pk", flat=True))
        grants = Grant.objects.filter(Q(user=user) | Q(group_id__in=group_ids)).select_related("role")
        for grant in grants:
            kind, object_id = parse_scope(grant.scope)
            self._by_scope[(kind, object_id)].append(
                _Grant(
                    kind=kind,
                    object_id=object_id,
                    propagate=grant.propagate,
                    from_user=grant.user_id is not None,
                    no_access=grant.role.name == NO_ACCESS,
                    privileges=frozenset(grant.role.privileges),
                    grant_id=grant.pk,
                    role_name=grant.role.name,
                    group_id=grant.group_id,
                )
            )

    def anywhere(self) -> frozenset[str]:
        """Every privilege the user holds on some scope (what an API token of theirs may be limited to)."""
        if self.everything:
            return frozenset(PRIVILEGES)
        if not self.active:
            return frozenset()
        return frozenset().union(
            *(g.privileges for grants in self._by_scope.values() for g in grants if not g.no_access)
        )

    def grants_at(self, key: tuple[str, int | None]) -> list[_Grant]:
        return self._by_scope.get(key, [])

    @staticmethod
    def choose(grants: list[_Grant], own_level: bool) -> list[_Grant] | None:
        """The grants that decide at one scope, or None when no grant there applies.

        A grant applies at its own scope, and below it only when it propagates; among those that
        apply, the user's own grants beat their groups' grants.
        """
        applicable = [g for g in grants if own_level or g.propagate]
        if not applicable:
            return None
        users = [g for g in applicable if g.from_user]
        return users or applicable

    @staticmethod
    def granted_by(chosen: list[_Grant] | tuple[_Grant, ...]) -> frozenset[str]:
        """What the deciding grants give: nothing when NoAccess is among them, else their roles' union."""
        if any(g.no_access for g in chosen):
            return frozenset()
        return frozenset().union(*(g.privileges for g in chosen))

    @classmethod
    def _decide(cls, grants: list[_Grant], own_level: bool) -> frozenset[str] | None:
        """Privileges granted at one scope, or None when no grant there applies."""
        chosen = cls.choose(grants, own_level)
        return None if chosen is None else cls.granted_by(chosen)

    def resolve(self, chain: list[tuple[str, int | None]]) -> Decision | None:
        """The one resolution: the deepest level of `chain` (deepest first, "/" last) with a grant that
        applies decides; None when no grant applies anywhere. `privileges_on` and explain.py use it."""
        for depth, key in enumerate(chain):
            grants = self._by_scope.get(key)
            if not grants:  # most levels of most chains hold no grant: skip them cheaply (list pages)
                continue
            chosen = self.choose(grants, own_level=depth == 0)
            if chosen is not None:
                return Decision(depth, key, tuple(chosen), self.granted_by(chosen))
        return None

    def privileges_on(self, chain: list[tuple[str, int | None]]) -> frozenset[str]:
        """Privileges on the object whose scope chain is `chain` (deepest first, "/" last)."""
        decision = self.resolve(chain)
        return frozenset() if decision is None else decision.privileges

    def level(self, kind: str, privilege: str, own_level: bool) -> tuple[list[int], list[int]]:
        """(object ids with a deciding grant at this level, the subset that grants `privilege`)."""
        decided, allowed = [], []
        for (scope_kind, object_id), grants in self._by_scope.items():
            if scope_kind != kind:
                continue
            privileges = self._decide(grants, own_level)
            if privileges is None:
                continue
            decided.append(object_id)
            if privilege in privileges:
                allowed.append(object_id)
        return decided, allowed


def access_for(user, *, fresh: bool = False) -> AccessSnapshot:
    """The user's snapshot, cached on the user object for the request (fresh=True re-reads)."""
    snapshot = getattr(user, "_kvmpanel_access", None)
    if fresh and getattr(user, "pk", None):
        # A long-lived holder of the user object (a WebSocket's scope) must see a disable made since.
        # get_user_model(), not type(user): Channels hands consumers a lazy wrapper of the user.
        flags = get_user_model().objects.filter(pk=user.pk).values("is_active", "is_superuser").first()
        if flags is None:  # deleted since: nothing is allowed any more
            flags = {"is_active": False, "is_superuser": False}
        user.is_active, user.is_superuser = flags["is_active"], flags["is_superuser"]
    if snapshot is None or fresh:
        snapshot = AccessSnapshot(user)
        user._kvmpanel_access = snapshot
    return snapshot


def held_privileges(user) -> frozenset[str]:
    return AccessSnapshot(user).anywhere()


def token_privileges(user) -> frozenset[str] | None:
    """The privilege subset of the API token this request came with; None when unlimited (or a session)."""
    return getattr(user, "token_privileges", None)


def forget_access(user) -> None:
    if hasattr(user, "_kvmpanel_access"):
        del user._kvmpanel_access


def scope_chain(obj: Model | None) -> list[tuple[str, int | None]]:
    if obj is None:
        return [(ROOT, None)]
    return [*obj.scope_chain(), (ROOT, None)]


def has_privilege(user, obj: Model | None, privilege: str, *, fresh: bool = False) -> bool:
    limit = token_privileges(user)
    if limit is not None and privilege not in limit:
        return False
    snapshot = access_for(user, fresh=fresh)
    if snapshot.everything:
        return True
    if not snapshot.active:
        return False
    return privilege in snapshot.privileges_on(scope_chain(obj))


def _constant(value: bool) -> Q:
    return ~Q(pk__in=[]) if value else Q(pk__in=[])


def restrict(queryset: QuerySet, user, privilege: str, *, fresh: bool = False) -> QuerySet:
    """Only the rows on which `user` holds `privilege`, as one SQL filter.

    `queryset.model.scope_fields` lists the model's scope levels deepest first, e.g.
    VirtualMachine: [("vms", "pk"), ("hosts", "host_id")]. The filter reads: allowed at the deepest
    level, or nothing decided there and (allowed one level up, or nothing decided there and ...).
    """
    limit = token_privileges(user)
    if limit is not None and privilege not in limit:
        return queryset.none()
    snapshot = access_for(user, fresh=fresh)
    if snapshot.everything:
        return queryset
    if not snapshot.active:
        return queryset.none()
    root_grants = snapshot._decide(snapshot._by_scope.get((ROOT, None), []), own_level=False)
    condition = _constant(root_grants is not None and privilege in root_grants)
    levels = queryset.model.scope_fields
    for depth in range(len(levels) - 1, -1, -1):
        kind, field = levels[depth]
        decided, allowed = snapshot.level(kind, privilege, own_level=depth == 0)
        condition = Q(**{f"{field}__in": allowed}) | (~Q(**{f"{field}__in": decided}) & condition)
    return queryset.filter(condition)


class RestrictedQuerySet(QuerySet):
    def restrict(self, user, privilege: str, *, fresh: bool = False) -> QuerySet:
        return restrict(self, user, privilege, fresh=fresh)


def get_object_or_deny(queryset: QuerySet, user, pk, privilege: str | None = None):
    """The one lookup: 404 unless the user may see the object, 403 unless they hold `privilege` on it."""
    obj = get_object_or_404(restrict(queryset, user, queryset.model.view_privilege), pk=pk)
    if privilege is not None and not has_privilege(user, obj, privilege):
        raise PermissionDenied
    return obj
