"""explain(user, obj) says, for every privilege, what the gate decides and why — and never disagrees with it."""

import pytest
from django.contrib.auth.models import Group

from apps.accounts import explain as why
from apps.accounts.explain import explain
from apps.accounts.models import Project, Role
from apps.accounts.permissions import forget_access, has_privilege
from apps.accounts.privileges import PRIVILEGES
from apps.accounts.services import grant_role
from tests.conftest import make_user


def fresh(user):
    """The user as a new request would load it: no cached grants."""
    return type(user).objects.get(pk=user.pk)


def objects_of(world) -> list:
    return [None, world.host, *world.host.vms.all(), *Project.objects.all()]


def assert_explain_agrees_with_the_gate(users, objects) -> int:
    compared = 0
    for user in users:
        for obj in objects:
            explanation = explain(fresh(user), obj)
            gate_user = fresh(user)
            for privilege in PRIVILEGES:
                decided = explanation.privileges[privilege]
                assert decided.allowed is has_privilege(gate_user, obj, privilege), (user, obj, privilege, decided.text)
                assert decided.text
                compared += 1
    return compared


@pytest.fixture
def team(world):
    """A project holding alice's VM, a group "ops", and users whose grants exercise every precedence rule.

    - gina: in "ops", which holds Operator on the host (allowed by group);
    - uma: in "ops" too, but her own VMUser on the host beats the group's Operator there (user over group);
    - dora: Operator on the host, VMUser on alice's VM (deeper beats shallower);
    - nora: Operator on the host, NoAccess on the project (NoAccess on a deeper scope);
    - sam: Operator and NoAccess both on the host (NoAccess beats every role on its scope);
    - pete: Operator on the host without propagation (it does not reach the VMs);
    - gus: in "ops", and NoAccess for "ops" on the project beats the group's host grant there.
    """
    project = Project.objects.create(name="team")
    world.vm.project = project
    world.vm.save(update_fields=["project"])
    ops = Group.objects.create(name="ops")
    blocked = Group.objects.create(name="blocked")
    users = {name: make_user(name) for name in ("gina", "uma", "dora", "nora", "sam", "pete", "gus")}
    for name in ("gina", "uma", "gus"):
        users[name].groups.add(ops)
    users["gus"].groups.add(blocked)
    root = world.root
    grant_role(actor=root, role="Operator", scope=world.host.scope, group=ops)
    grant_role(actor=root, role="VMUser", scope=world.host.scope, user=users["uma"])
    grant_role(actor=root, role="Operator", scope=world.host.scope, user=users["dora"])
    grant_role(actor=root, role="VMUser", scope=world.vm.scope, user=users["dora"])
    grant_role(actor=root, role="Operator", scope=world.host.scope, user=users["nora"])
    grant_role(actor=root, role="NoAccess", scope=project.scope, user=users["nora"])
    grant_role(actor=root, role="Operator", scope=world.host.scope, user=users["sam"])
    grant_role(actor=root, role="NoAccess", scope=world.host.scope, user=users["sam"])
    grant_role(actor=root, role="Operator", scope=world.host.scope, user=users["pete"], propagate=False)
    grant_role(actor=root, role="NoAccess", scope=project.scope, group=blocked)
    return project, users


def test_it_agrees_with_the_gate_for_every_persona_object_and_privilege(world):
    disabled = make_user("dis")
    grant_role(actor=world.root, role="Operator", scope="/", user=disabled)
    disabled.is_active = False
    disabled.save()
    personas = [world.alice, world.bob, world.carol, world.oscar, world.root, disabled]
    compared = assert_explain_agrees_with_the_gate(personas, objects_of(world))
    assert compared == len(personas) * (2 + world.host.vms.count()) * len(PRIVILEGES)


def test_it_agrees_with_the_gate_on_groups_no_access_and_precedence(world, team):
    _project, users = team
    assert_explain_agrees_with_the_gate([*users.values(), world.alice, world.oscar], objects_of(world))


def test_it_names_the_group_a_privilege_comes_from_and_the_scope_it_is_inherited_from(world, team):
    _project, users = team
    explanation = explain(fresh(users["gina"]), world.running_vm)
    power = explanation.privileges["vm.power"]
    assert power.allowed and power.reason == why.GRANTED
    (grant,) = power.grants
    assert (grant.role, grant.scope, grant.group) == ("Operator", world.host.scope, "ops")
    assert explanation.inherited_from == world.host.scope
    assert "via group ops" in power.text and f"Inherited from {world.host.scope}" in power.text


def test_a_users_own_grant_beats_their_groups_grant_on_the_same_scope(world, team):
    _project, users = team
    explanation = explain(fresh(users["uma"]), world.running_vm)
    clone = explanation.privileges["vm.clone"]
    assert not clone.allowed and clone.reason == why.NOT_IN_ROLE
    (override,) = clone.would_allow
    assert override.reason == why.USER_OVER_GROUP and override.grant.group == "ops"
    assert [g.role for g in explanation.deciding] == ["VMUser"] and explanation.deciding[0].group is None
    assert explanation.privileges["vm.power"].allowed


def test_a_deeper_grant_beats_a_shallower_one(world, team):
    _project, users = team
    explanation = explain(fresh(users["dora"]), world.vm)
    assert explanation.deciding_scope == world.vm.scope and explanation.inherited_from is None
    clone = explanation.privileges["vm.clone"]
    assert not clone.allowed
    assert [(o.reason, o.grant.role, o.grant.scope) for o in clone.would_allow] == [
        (why.DEEPER, "Operator", world.host.scope)
    ]
    assert "deeper grants on " + world.vm.scope in clone.text
    # On another VM of the host the host's Operator grant decides.
    assert explain(fresh(users["dora"]), world.running_vm).privileges["vm.clone"].allowed


def test_no_access_on_the_project_hides_the_vm_despite_the_host_grant(world, team):
    project, users = team
    explanation = explain(fresh(users["nora"]), world.vm)
    view = explanation.privileges["vm.view"]
    assert not view.allowed and view.reason == why.DENIED_BY_NO_ACCESS
    assert [g.scope for g in view.grants] == [project.scope]
    assert explanation.inherited_from == project.scope
    assert [(o.reason, o.grant.scope) for o in view.would_allow] == [(why.DEEPER, world.host.scope)]
    assert "NoAccess on " + project.scope in view.text


def test_no_access_beats_every_other_role_on_the_same_scope(world, team):
    _project, users = team
    explanation = explain(fresh(users["sam"]), world.running_vm)
    view = explanation.privileges["vm.view"]
    assert not view.allowed and view.reason == why.DENIED_BY_NO_ACCESS
    assert [(o.reason, o.grant.role) for o in view.would_allow] == [(why.BEATEN_BY_NO_ACCESS, "Operator")]


def test_a_group_no_access_on_the_project_beats_the_groups_host_grant(world, team):
    _project, users = team
    view = explain(fresh(users["gus"]), world.vm).privileges["vm.view"]
    assert not view.allowed and view.reason == why.DENIED_BY_NO_ACCESS
    assert view.grants[0].group == "blocked"


def test_a_grant_that_does_not_propagate_reaches_only_its_own_scope(world, team):
    _project, users = team
    on_host = explain(fresh(users["pete"]), world.host)
    assert on_host.privileges["host.view"].allowed
    on_vm = explain(fresh(users["pete"]), world.running_vm)
    power = on_vm.privileges["vm.power"]
    assert not power.allowed and power.reason == why.NO_GRANT
    assert [o.reason for o in power.would_allow] == [why.NOT_PROPAGATING]


def test_superusers_and_disabled_users_are_explained(world):
    assert explain(fresh(world.root), world.vm).allowed == frozenset(PRIVILEGES)
    assert explain(fresh(world.root), None).status == why.SUPERUSER
    alice = fresh(world.alice)
    alice.is_active = False
    explanation = explain(alice, world.vm)
    assert explanation.status == why.INACTIVE and explanation.allowed == frozenset()
    assert "disabled" in explanation.privileges["vm.view"].text


def test_an_api_tokens_ceiling_is_part_of_the_explanation(world):
    alice = fresh(world.alice)
    alice.token_privileges = frozenset({"vm.view"})
    explanation = explain(alice, world.vm)
    assert explanation.allowed == {"vm.view"}
    assert explanation.privileges["vm.power"].reason == why.PRIVILEGE_CEILING
    assert has_privilege(alice, world.vm, "vm.view") and not has_privilege(alice, world.vm, "vm.power")


def test_a_user_with_no_grant_is_told_nothing_applies(world):
    explanation = explain(fresh(world.bob), world.vm)
    assert explanation.status == why.NO_GRANT and explanation.allowed == frozenset()
    assert explanation.chain == (world.vm.scope, world.host.scope, "/")


def test_the_explanation_follows_a_grant_made_since(world):
    bob = fresh(world.bob)
    assert not explain(bob, world.vm).privileges["vm.view"].allowed
    grant_role(actor=world.root, role=Role.objects.get(name="Auditor"), scope="/", user=world.bob)
    forget_access(bob)
    explanation = explain(bob, world.vm)
    assert explanation.privileges["vm.view"].allowed and explanation.inherited_from == "/"
