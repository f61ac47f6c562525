"""`/account/groups/` and `/account/grants/`: groups for managers, grants with delegation for everyone."""

from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse

from apps.accounts.models import Grant, Role
from apps.accounts.services import grant_role


def session(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_a_manager_creates_a_group_with_members_and_deletes_it(world):
    root = session(world.root)
    response = root.post(reverse("account-groups"), {"name": "ops", "members": [world.bob.pk, world.carol.pk]})
    assert response.status_code == 302
    group = Group.objects.get(name="ops")
    assert set(group.user_set.values_list("username", flat=True)) == {"bob", "carol"}
    assert "bob, carol" in root.get(reverse("account-groups")).content.decode()
    assert root.post(reverse("account-group-delete", args=[group.pk])).status_code == 302
    assert not Group.objects.filter(pk=group.pk).exists()


def test_the_groups_page_is_403_without_user_manage(world):
    assert session(world.oscar).get(reverse("account-groups")).status_code == 403
    assert session(world.alice).post(reverse("account-groups"), {"name": "mine"}).status_code == 403
    assert not Group.objects.filter(name="mine").exists()


def test_a_vm_owner_shares_vmuser_from_the_page_but_not_operator(world):
    alice = session(world.alice)
    data = {"role": Role.objects.get(name="VMUser").pk, "scope": world.vm.scope, "username": "bob", "propagate": "on"}
    assert alice.post(reverse("account-grants"), data).status_code == 302
    assert Grant.objects.filter(user=world.bob, scope=world.vm.scope, role__name="VMUser").exists()
    refused = alice.post(reverse("account-grants"), data | {"role": Role.objects.get(name="Operator").pk})
    assert refused.status_code == 403
    assert "hold on that scope" in refused.content.decode()
    assert not Grant.objects.filter(user=world.bob, role__name="Operator").exists()


def test_a_manager_grants_a_role_to_a_group_from_the_page(world):
    Group.objects.create(name="ops")
    data = {"role": Role.objects.get(name="Operator").pk, "scope": world.host.scope, "group": "ops", "propagate": "on"}
    assert session(world.root).post(reverse("account-grants"), data).status_code == 302
    assert Grant.objects.filter(group__name="ops", scope=world.host.scope).exists()


def test_the_grants_page_lists_ones_own_grants_and_revokes_only_within_delegation(world):
    alice = session(world.alice)
    page = alice.get(reverse("account-grants")).content.decode()
    assert world.vm.scope in page and world.host.scope not in page  # oscar's and carol's host grants are not hers
    oscars = Grant.objects.get(user=world.oscar)
    assert alice.post(reverse("account-grant-revoke", args=[oscars.pk])).status_code == 404
    blocked = grant_role(actor=world.root, role="NoAccess", scope=world.running_vm.scope, user=world.carol)
    assert session(world.carol).post(reverse("account-grant-revoke", args=[blocked.pk])).status_code == 403
    own = Grant.objects.get(user=world.alice, scope=world.vm.scope)
    assert alice.post(reverse("account-grant-revoke", args=[own.pk])).status_code == 302
    assert not Grant.objects.filter(pk=own.pk).exists()
