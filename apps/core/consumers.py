"""The base of every live-update WebSocket consumer: authentication, authorization, keepalive, and
closing when the user's access changes (apps/accounts/live.py sends `access.changed`)."""

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.contrib.auth import get_user_model

from apps.accounts.live import user_group

CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404


@database_sync_to_async
def _still_active(user) -> bool:
    return get_user_model().objects.filter(pk=user.pk, is_active=True).exists()


class LiveConsumer(AsyncJsonWebsocketConsumer):
    """Joins `group` after `authorize`, and its user's group for access changes; subclasses re-check
    the gate on every message they relay, and `lose_access` when their own object went out of reach."""

    group = ""
    user_group = ""

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        if not await self.authorize(user):
            await self.close(code=CLOSE_NOT_FOUND)
            return
        self.user_group = user_group(user.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.channel_layer.group_add(self.user_group, self.channel_name)
        await self.accept()
        await self.send_json({"type": "hello"})

    async def authorize(self, user) -> bool:
        return True

    async def access_changed(self, event: dict) -> None:
        """A grant, role, group membership or the user's active flag changed: check again now."""
        user = self.scope["user"]
        if not await _still_active(user):
            await self.close(code=CLOSE_UNAUTHENTICATED)
        elif not await self.authorize(user):
            await self.lose_access()

    async def lose_access(self) -> None:
        """The socket's own object is no longer visible to its user: close (the page stops retrying)."""
        await self.close(code=CLOSE_NOT_FOUND)

    async def disconnect(self, code: int) -> None:
        for group in (self.group, self.user_group):
            if group:
                await self.channel_layer.group_discard(group, self.channel_name)

    async def receive_json(self, content, **kwargs) -> None:
        if content.get("type") == "ping":
            await self.send_json({"type": "pong"})
