"""Push changes to open pages over Channels, after the database commit."""

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

log = logging.getLogger(__name__)


def _send(groups: list[str], message: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        for group in groups:
            async_to_sync(layer.group_send)(group, message)
    except Exception:  # a push failure must never undo or fail the change itself
        log.warning("could not push %s to %s", message.get("type"), groups, exc_info=True)


def send_after_commit(groups: list[str], message: dict[str, Any]) -> None:
    """Messages carry values only (states, ids), never translated text: every open page shows
    them in its own user's language (apps/core/context_processors.py)."""
    transaction.on_commit(lambda: _send(groups, message))
