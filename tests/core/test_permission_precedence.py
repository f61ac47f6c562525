"""Every route again, for how grants combine: the same access given through a group is allowed, a
user's own NoAccess beside it denies, and a user's own grant beats their group's NoAccess.

For each row whose allowed persona holds grants (alice: VMUser on her VMs; oscar: Operator on the
host; carol: Viewer on the host), dave gets exactly those grants another way, and must get the
answer the matrix expects of the allowed persona or of the stranger.
"""

import pytest
from django.contrib.auth.models import Group

from apps.accounts.models import Grant, Role
from tests.conftest import make_user
from tests.core.test_permission_matrix import EVERY_ROUTE, client_for, request

GRANTED_PERSONAS = {"alice", "oscar", "carol"}

# Rows allowed to the persona for who they are, not for a grant: they answer dave differently by design.
NOT_BY_GRANT = {
    # alice's own API tokens (listed, created, revoked by their owner)
    "account-tokens",
    "account-token-create",
    "account-token-revoke",
    "token-list",
    "token-detail",
    "token-revoke",
    # one's own quota
    "user-quota",
    # alice's own grants: one reads (and may drop) a grant made to oneself
    "grant-detail",
    "account-grant-revoke",
    # one's own effective permissions
    "account-effective",
    "user-effective",
    # one's own second factor
    "account-2fa-confirm",
}

PRECEDENCE = {
    # the allowed persona's grants, given to a group dave is in: allowed
    "through-a-group": "allowed",
    # the same group grants, and dave's own NoAccess on the same scopes: denied as if ungranted
    "group-but-own-noaccess": "stranger",
    # the group has NoAccess on those scopes, dave holds the grants himself: the user's grant wins
    "own-grant-over-group-noaccess": "allowed",
}


def _dave(world, route, case: str):
    """dave, holding the allowed persona's grants (as they are once the route's objects exist) the
    way `case` says."""
    route.url(world)  # the route's objects (and any grants they come with) exist before copying
    persona = getattr(world, route.allowed_as)
    dave, team = make_user("dave"), Group.objects.create(name="dave-team")
    dave.groups.add(team)
    no_access = Role.objects.get(name="NoAccess")
    for grant in Grant.objects.filter(user=persona):
        to_group = case != "own-grant-over-group-noaccess"
        Grant.objects.create(
            role=grant.role,
            scope=grant.scope,
            propagate=grant.propagate,
            user=None if to_group else dave,
            group=team if to_group else None,
        )
        if case == "group-but-own-noaccess":
            Grant.objects.create(role=no_access, scope=grant.scope, propagate=grant.propagate, user=dave)
        if case == "own-grant-over-group-noaccess":
            Grant.objects.create(role=no_access, scope=grant.scope, propagate=grant.propagate, group=team)
    world.dave = dave
    return dave


@pytest.mark.parametrize(
    "route",
    [r for r in EVERY_ROUTE if r.allowed_as in GRANTED_PERSONAS and r.name not in NOT_BY_GRANT],
    ids=lambda r: f"{r.method}-{r.name}",
)
@pytest.mark.parametrize("case", list(PRECEDENCE))
def test_the_route_follows_grant_precedence(world, route, case):
    _dave(world, route, case)
    expected = route.allowed if PRECEDENCE[case] == "allowed" else route.stranger
    response = request(client_for(world, "dave"), route, world)
    assert response.status_code == expected, getattr(response, "content", b"")[:300]
