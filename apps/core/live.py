"""Push changes to open pages over Channels, after the database commit."""

import asyncio
import logging
import os
import threading
from typing import Any

from channels.layers import get_channel_layer
from django.db import transaction

log = logging.getLogger(__name__)

PUSH_TIMEOUT_SECONDS = 5


class _PushLoop:
    """One event loop thread per process that sends pushes made from synchronous code.

    async_to_sync per message started a loop and an executor thread each time (about 4 ms per group
    in a job's progress report); a loop that stays up sends in well under a millisecond. Recreated
    after a fork (Celery's prefork children inherit the object, not the thread).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pid = 0

    def get(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._pid != os.getpid():
                self._loop = asyncio.new_event_loop()
                self._pid = os.getpid()
                threading.Thread(target=self._loop.run_forever, name="live-push", daemon=True).start()
            return self._loop


_push_loop = _PushLoop()


async def _send_all(layer, groups: list[str], message: dict[str, Any]) -> None:
    for group in groups:
        await layer.group_send(group, message)


def _send(groups: list[str], message: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    future = asyncio.run_coroutine_threadsafe(_send_all(layer, groups, message), _push_loop.get())
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        return  # called from a thread running an event loop: never block it; the push goes on its own
    try:
        future.result(timeout=PUSH_TIMEOUT_SECONDS)
    except Exception:  # a push failure must never undo or fail the change itself
        log.warning("could not push %s to %s", message.get("type"), groups, exc_info=True)


def send_after_commit(groups: list[str], message: dict[str, Any]) -> None:
    """Messages carry values only (states, ids), never translated text: every open page shows
    them in its own user's language (apps/core/context_processors.py)."""
    transaction.on_commit(lambda: _send(groups, message))
