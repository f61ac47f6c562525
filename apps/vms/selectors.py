"""Reads for VM pages and the API: inventory columns only, never the hypervisor."""

from django.db.models import QuerySet

from apps.accounts.permissions import access_for, scope_chain
from apps.accounts.privileges import PRIVILEGES
from apps.vms.models import VirtualMachine

ALL_PRIVILEGES = frozenset(PRIVILEGES)


def visible_vms(user) -> QuerySet[VirtualMachine]:
    # Lists show the host's name only: leave its capability JSON columns undecoded.
    return (
        VirtualMachine.objects.restrict(user, "vm.view")
        .select_related("host")
        .defer("host__pools", "host__networks", "host__virtualization_flags")
    )


def filter_vms(queryset: QuerySet[VirtualMachine], *, host=None, state: str = "", name: str = "") -> QuerySet:
    if host:
        queryset = queryset.filter(host=host)
    if state:
        queryset = queryset.filter(state=state)
    if name:
        queryset = queryset.filter(name__icontains=name)
    return queryset


def privileges_on(user, vm: VirtualMachine) -> frozenset[str]:
    """The user's privileges on one VM, from the grants already loaded (no query per row)."""
    snapshot = access_for(user)
    if snapshot.everything:
        return ALL_PRIVILEGES
    return snapshot.privileges_on(scope_chain(vm))
