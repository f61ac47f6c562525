"""The one gate: how grants combine, as SQL (restrict) and in memory (has_privilege)."""

import pytest
from django.contrib.auth.models import Group

from apps.accounts.models import Role
from apps.accounts.permissions import has_privilege, parse_scope
from apps.accounts.services import grant_role
from apps.vms.models import VirtualMachine


def visible(user, privilege="vm.view") -> set[str]:
    return set(VirtualMachine.objects.restrict(user, privilege, fresh=True).values_list("name", flat=True))


def agrees(user, privilege: str) -> None:
    """restrict() and has_privilege() must give the same answer for every VM."""
    allowed = visible(user, privilege)
    for vm in VirtualMachine.objects.all():
        assert has_privilege(user, vm, privilege, fresh=True) == (vm.name in allowed), vm.name


def test_a_user_without_grants_sees_nothing(world):
    assert visible(world.bob) == set()
    agrees(world.bob, "vm.view")


def test_an_owner_sees_only_their_vms(world):
    assert visible(world.alice) == {"vm0000", "vm0002"}
    assert visible(world.alice, "vm.power") == {"vm0000", "vm0002"}
    agrees(world.alice, "vm.power")


def test_a_host_grant_propagates_to_its_vms(world):
    assert visible(world.oscar, "vm.power") == {"vm0000", "vm0001", "vm0002", "vm0003"}
    assert visible(world.carol, "vm.view") == {"vm0000", "vm0001", "vm0002", "vm0003"}
    assert visible(world.carol, "vm.power") == set()
    agrees(world.carol, "vm.power")


def test_a_deeper_grant_beats_a_shallower_one(world):
    grant_role(actor=world.root, role="Auditor", scope=world.vm.scope, user=world.oscar)
    assert "vm0002" not in visible(world.oscar, "vm.power")
    assert "vm0002" in visible(world.oscar, "vm.view")
    agrees(world.oscar, "vm.power")


def test_no_access_beats_every_other_role_at_the_same_scope(world):
    grant_role(actor=world.root, role="NoAccess", scope=world.vm.scope, user=world.alice)
    assert visible(world.alice) == {"vm0000"}
    agrees(world.alice, "vm.view")


def test_a_users_own_grant_beats_their_groups_grant(world):
    team = Group.objects.create(name="team")
    world.bob.groups.add(team)
    grant_role(actor=world.root, role="NoAccess", scope=world.host.scope, group=team)
    assert visible(world.bob) == set()
    grant_role(actor=world.root, role="Operator", scope=world.host.scope, user=world.bob)
    assert len(visible(world.bob, "vm.power")) == 4
    agrees(world.bob, "vm.power")


def test_group_grants_give_access_to_members(world):
    team = Group.objects.create(name="ops")
    world.bob.groups.add(team)
    grant_role(actor=world.root, role="Operator", scope="/", group=team)
    assert len(visible(world.bob, "vm.power")) == 4
    agrees(world.bob, "vm.power")


def test_a_grant_that_does_not_propagate_stays_on_its_own_scope(world):
    grant_role(actor=world.root, role="Operator", scope=world.host.scope, user=world.bob, propagate=False)
    assert visible(world.bob) == set()
    assert has_privilege(world.bob, world.host, "host.view", fresh=True)
    agrees(world.bob, "vm.view")


def test_a_root_grant_reaches_every_host(world):
    grant_role(actor=world.root, role="Auditor", scope="/", user=world.bob)
    assert len(visible(world.bob)) == 4
    assert visible(world.bob, "vm.power") == set()


def test_superusers_hold_every_privilege_and_inactive_users_none(world):
    assert len(visible(world.root, "vm.delete")) == 4
    world.oscar.is_active = False
    world.oscar.save()
    assert visible(world.oscar) == set()
    assert not has_privilege(world.oscar, world.vm, "vm.view", fresh=True)


def test_a_custom_role_grants_exactly_its_privileges(world):
    role = Role.objects.create(name="PowerOnly", privileges=["vm.view", "vm.power"])
    grant_role(actor=world.root, role=role, scope=world.vm.scope, user=world.bob)
    assert visible(world.bob, "vm.power") == {"vm0002"}
    assert visible(world.bob, "vm.delete") == set()


@pytest.mark.parametrize("scope", ["/vms/x", "/projects", "hosts/1", "/vms/1/2", ""])
def test_it_refuses_malformed_scopes(scope):
    with pytest.raises(ValueError):
        parse_scope(scope)


def test_builtin_roles_exist_after_migrate(db):
    names = set(Role.objects.filter(builtin=True).values_list("name", flat=True))
    assert names == {"Administrator", "Operator", "VMUser", "TemplateUser", "Auditor", "NoAccess"}


def test_the_gate_costs_two_queries_whatever_the_number_of_grants(world, django_assert_max_num_queries):
    for vm in VirtualMachine.objects.all():
        grant_role(actor=world.root, role="Auditor", scope=vm.scope, user=world.bob)
    bob = type(world.bob).objects.get(pk=world.bob.pk)
    with django_assert_max_num_queries(3):
        assert len(list(VirtualMachine.objects.restrict(bob, "vm.view"))) == 4


def test_every_privilege_is_documented():
    from apps.accounts.privileges import PRIVILEGES
    from tests.conftest import ROOT

    documented = (ROOT / "docs" / "permissions.md").read_text()
    assert [name for name in PRIVILEGES if f"| `{name}` |" not in documented] == []
