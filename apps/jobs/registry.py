"""Job kinds: what each needs (privilege, target) and what runs it. Each app registers its own kinds
in its `job_kinds.py` (apps/storage/job_kinds.py, apps/vms/job_kinds.py, ...)."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.utils.module_loading import autodiscover_modules


@dataclass(frozen=True)
class JobKind:
    name: str
    privilege: str
    target: str  # "host" or "vm": the object the privilege is checked on
    validate: Callable[..., dict[str, Any]]  # (target, params) -> cleaned params; raises ServiceError
    run: Callable[..., dict[str, Any] | None]  # (ctx) -> result
    cleanup: Callable[..., None] | None = None  # (ctx) after a failure or cancel: undo what run created
    # A privilege also needed on the VM's host (a clone makes a new VM there: vm.create).
    host_privilege: str = ""
    # (actor, target, cleaned params) -> a quota reservation kept in params["reservation"]; called in
    # the transaction that inserts the job, raises ServiceError when a quota would be passed
    # (apps/accounts/quotas.py).
    reserve: Callable[..., dict[str, Any]] | None = None
    # (user, target, params, fresh) -> bool, in place of `privilege` on the target, for kinds whose
    # right depends on their parameters (vm.create: on the host, or through a project placed on it).
    authorize: Callable[..., bool] | None = None


KINDS: dict[str, JobKind] = {}
_loaded = False


def register(kind: JobKind) -> JobKind:
    KINDS[kind.name] = kind
    return kind


def get_kind(name: str) -> JobKind | None:
    load_kinds()
    return KINDS.get(name)


def load_kinds() -> None:
    """Import every app's `job_kinds` module once: each registers the kinds it owns."""
    global _loaded
    if not _loaded:
        autodiscover_modules("job_kinds")
        _loaded = True
