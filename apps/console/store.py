"""Console tickets and open-console counts, in Redis.

A ticket is stored under the SHA-256 of its secret (never the secret itself) with a TTL, and is
redeemed with GETDEL, so two connections presenting the same ticket cannot both win. Open consoles
are members of sorted sets scored by an expiry time that the proxy refreshes while the console
lives, so a proxy that died leaves nothing counted for long.
"""

import hashlib
import json
import os
import time
from typing import Any

import redis
from django.conf import settings

_clients: dict[int, redis.Redis] = {}


def client() -> redis.Redis:
    """One client per process: the console proxy forks per connection, and a socket must not be
    shared across a fork."""
    pid = os.getpid()
    if pid not in _clients:
        # driver_info=None: no CLIENT SETINFO round trip (and package-version lookup) per connection.
        _clients[pid] = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5, driver_info=None)
    return _clients[pid]


def forget_clients() -> None:
    """Drop this process's clients (before forking, so no child shares a socket)."""
    for connection in _clients.values():
        connection.close()
    _clients.clear()


def _key(*parts: object) -> str:
    # Namespaced like the channel layer and Celery queue, so the test suite, a benchmark and a
    # running panel sharing one Redis never count each other's consoles.
    return ":".join([settings.KVMPANEL_REDIS_NAMESPACE, "console", *map(str, parts)])


def _ticket_key(secret: str) -> str:
    return _key("ticket", hashlib.sha256(secret.encode()).hexdigest())


def save_ticket(secret: str, data: dict[str, Any], ttl: int) -> None:
    client().set(_ticket_key(secret), json.dumps(data), ex=ttl, nx=True)


def redeem_ticket(secret: str) -> dict[str, Any] | None:
    """The ticket's data, exactly once; None for an unknown, expired or already used ticket."""
    raw = client().getdel(_ticket_key(secret))
    return json.loads(raw) if raw else None


def count_issued(user_id: int, window_seconds: int = 60) -> int:
    """Tickets issued to the user in the current window (rate limiting)."""
    key = _key("rate", user_id, int(time.time()) // window_seconds)
    with client().pipeline() as pipe:
        pipe.incr(key)
        pipe.expire(key, window_seconds * 2)
        issued, _ = pipe.execute()
    return int(issued)


def _open_keys(user_id: int, vm_id: int) -> tuple[str, str]:
    return _key("open", "user", user_id), _key("open", "vm", vm_id)


def mark_open(connection_id: str, user_id: int, vm_id: int, lifetime: float) -> None:
    """Count the console as open until now + lifetime (called again to extend it)."""
    expiry = time.time() + lifetime
    with client().pipeline() as pipe:
        for key in _open_keys(user_id, vm_id):
            pipe.zadd(key, {connection_id: expiry})
            pipe.expire(key, int(lifetime) + 60)
        pipe.execute()


def mark_closed(connection_id: str, user_id: int, vm_id: int) -> None:
    with client().pipeline() as pipe:
        for key in _open_keys(user_id, vm_id):
            pipe.zrem(key, connection_id)
        pipe.execute()


def open_counts(user_id: int, vm_id: int) -> tuple[int, int]:
    """(consoles open by the user, consoles open to the VM), forgetting expired entries."""
    now = time.time()
    with client().pipeline() as pipe:
        for key in _open_keys(user_id, vm_id):
            pipe.zremrangebyscore(key, "-inf", now)
            pipe.zcard(key)
        _removed_user, by_user, _removed_vm, by_vm = pipe.execute()
    return int(by_user), int(by_vm)
