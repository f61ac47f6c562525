"""Live VM state over WebSocket. Every message is re-checked against the gate before it is sent,
so a user whose access is revoked stops receiving updates at once."""

from channels.db import database_sync_to_async

from apps.accounts.permissions import restrict
from apps.core.consumers import LiveConsumer
from apps.vms.live import VMS_GROUP, vm_group
from apps.vms.models import VirtualMachine


@database_sync_to_async
def _visible(user, vm_id: int) -> bool:
    return restrict(VirtualMachine.objects.filter(pk=vm_id), user, "vm.view", fresh=True).exists()


class _VMConsumer(LiveConsumer):
    async def relay(self, event: dict) -> bool:
        """Send the change if the user may see the VM (or it is gone); False if they may not."""
        payload = event["payload"]
        if payload.get("deleted") or await _visible(self.scope["user"], event["vm_id"]):
            await self.send_json({"type": "vm", "vm": payload})
            return True
        return False


class VMListConsumer(_VMConsumer):
    """`/ws/vms/`: every change to a VM the user can see."""

    group = VMS_GROUP

    async def vm_changed(self, event: dict) -> None:
        await self.relay(event)


class VMDetailConsumer(_VMConsumer):
    """`/ws/vms/<id>/`: changes to one VM; closes with 4404 if the user cannot see it, at connect or
    as soon as they lose it."""

    async def vm_changed(self, event: dict) -> None:
        if not await self.relay(event):
            await self.lose_access()

    async def authorize(self, user) -> bool:
        vm_id = int(self.scope["url_route"]["kwargs"]["pk"])
        self.group = vm_group(vm_id)
        return await _visible(user, vm_id)
