"""Live VM state over WebSocket. Every message is re-checked against the gate before it is sent,
so a user whose access is revoked stops receiving updates at once."""

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from apps.accounts.permissions import restrict
from apps.vms.live import VMS_GROUP, vm_group
from apps.vms.models import VirtualMachine

CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404


@database_sync_to_async
def _visible(user, vm_id: int) -> bool:
    return restrict(VirtualMachine.objects.filter(pk=vm_id), user, "vm.view", fresh=True).exists()


class _VMConsumer(AsyncJsonWebsocketConsumer):
    group = ""

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        if not await self.authorize(user):
            await self.close(code=CLOSE_NOT_FOUND)
            return
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send_json({"type": "hello"})

    async def authorize(self, user) -> bool:
        return True

    async def disconnect(self, code: int) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def vm_changed(self, event: dict) -> None:
        payload = event["payload"]
        if payload.get("deleted") or await _visible(self.scope["user"], event["vm_id"]):
            await self.send_json({"type": "vm", "vm": payload})

    async def receive_json(self, content, **kwargs) -> None:
        if content.get("type") == "ping":
            await self.send_json({"type": "pong"})


class VMListConsumer(_VMConsumer):
    """`/ws/vms/`: every change to a VM the user can see."""

    group = VMS_GROUP


class VMDetailConsumer(_VMConsumer):
    """`/ws/vms/<id>/`: changes to one VM; closes with 4404 if the user cannot see it."""

    async def authorize(self, user) -> bool:
        vm_id = int(self.scope["url_route"]["kwargs"]["pk"])
        self.group = vm_group(vm_id)
        return await _visible(user, vm_id)
