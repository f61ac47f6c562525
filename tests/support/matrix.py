"""One row of the permission matrix (tests/core/test_permission_matrix.py)."""

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Route:
    name: str
    method: str
    url: Callable  # world -> url
    anonymous: int  # status for anonymous users
    stranger: int  # bob: no grant at all
    viewer: int  # carol: Viewer on the host
    allowed_as: str  # persona for whom it succeeds
    allowed: int
    data: Callable | None = None  # world -> POST data
    api: bool = False
