"""Reads for the audit log page, its CSV export and the API: the database only.

Who may read: `audit.view` held at `/` (the root scope), nothing less. A host-scoped Auditor would
have to see "the events about that host and its VMs", but events name their target only as
(target_type, target_id) strings across every kind of object (VMs, hosts, pools, volumes, jobs,
grants, users), and many have no host at all (a grant, a user, a login). Mapping each type back to a
host would be a second permission model beside `restrict`, so the log is all-or-nothing, decided by
the one gate (`has_privilege(user, None, "audit.view")`).
"""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.utils import timezone

from apps.accounts.permissions import has_privilege
from apps.audit.models import AuditEvent

AUDIT_VIEW = "audit.view"
# Events name their target by model name; people (and the placeholder) say "vm:12".
TYPE_ALIASES = {"vm": "virtualmachine", "pool": "storagepool", "volume": "storagevolume"}


def may_view_audit(user) -> bool:
    """True when `user` may read the whole audit log (the privilege at `/`)."""
    return bool(user.is_authenticated) and has_privilege(user, None, AUDIT_VIEW)


def visible_events(user) -> QuerySet:
    """Every event, newest first, for a user holding `audit.view` at `/`; PermissionDenied otherwise."""
    if not may_view_audit(user):
        raise PermissionDenied
    return AuditEvent.objects.order_by("-at", "-pk")


@dataclass(frozen=True)
class EventFilter:
    """What the page's form and the API's query string may ask for; empty fields filter nothing.

    `verb` is exact ("vm.start") or a prefix when it ends with a dot or a star ("vm." / "vm.*").
    `target` matches the object's name (contains) or, when it reads "type:id" ("vm:12"), that object.
    `since`/`until` are whole days in the panel's time zone, both included.
    """

    actor: str = ""
    verb: str = ""
    target_type: str = ""
    target: str = ""
    result: str = ""
    since: date | None = None
    until: date | None = None


def _start_of(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def filter_events(queryset: QuerySet, wanted: EventFilter) -> QuerySet:
    if wanted.actor:
        queryset = queryset.filter(actor_name__iexact=wanted.actor)
    verb = wanted.verb.strip()
    if verb.endswith(("*", ".")):
        queryset = queryset.filter(verb__startswith=verb.rstrip("*"))
    elif verb:
        queryset = queryset.filter(verb=verb)
    if wanted.target_type:
        queryset = queryset.filter(target_type=TYPE_ALIASES.get(wanted.target_type, wanted.target_type))
    target = wanted.target.strip()
    if target:
        kind, colon, object_id = target.partition(":")
        if colon and kind and object_id:
            queryset = queryset.filter(
                Q(target_type=TYPE_ALIASES.get(kind, kind), target_id=object_id) | Q(target_repr__icontains=target)
            )
        else:
            queryset = queryset.filter(Q(target_repr__icontains=target) | Q(target_id=target))
    if wanted.result:
        queryset = queryset.filter(result=wanted.result)
    if wanted.since is not None:
        queryset = queryset.filter(at__gte=_start_of(wanted.since))
    if wanted.until is not None:
        queryset = queryset.filter(at__lt=_start_of(wanted.until + timedelta(days=1)))
    return queryset


def target_types() -> list[str]:
    """The object types that occur in the log (for the filter's choices): one indexed query."""
    return list(AuditEvent.objects.order_by().values_list("target_type", flat=True).distinct())
