"""Job kinds: what each needs (privilege, target) and what runs it. Kinds register themselves."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class JobKind:
    name: str
    privilege: str
    target: str  # "host" or "vm": the object the privilege is checked on
    validate: Callable[..., dict[str, Any]]  # (target, params) -> cleaned params; raises ServiceError
    run: Callable[..., dict[str, Any] | None]  # (ctx) -> result
    cleanup: Callable[..., None] | None = None  # (ctx) after a failure or cancel: undo what run created


KINDS: dict[str, JobKind] = {}


def register(kind: JobKind) -> JobKind:
    KINDS[kind.name] = kind
    return kind


def get_kind(name: str) -> JobKind | None:
    from apps.jobs import kinds  # noqa: F401 - registers the built-in kinds

    return KINDS.get(name)
