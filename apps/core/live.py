"""Push changes to open pages over Channels, after the database commit."""

import asyncio
import logging
import threading
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

log = logging.getLogger(__name__)


def _send_now(groups: list[str], message: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        for group in groups:
            async_to_sync(layer.group_send)(group, message)
    except Exception:  # a push failure must never undo or fail the change itself
        log.warning("could not push %s to %s", message.get("type"), groups, exc_info=True)


def _send(groups: list[str], message: dict[str, Any]) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        _send_now(groups, message)
        return
    # Called from a thread that runs an event loop (async_to_sync refuses to run there): send from
    # a short-lived thread instead of blocking the loop.
    threading.Thread(target=_send_now, args=(groups, message), daemon=True).start()


def send_after_commit(groups: list[str], message: dict[str, Any]) -> None:
    """Messages carry values only (states, ids), never translated text: every open page shows
    them in its own user's language (apps/core/context_processors.py)."""
    transaction.on_commit(lambda: _send(groups, message))
