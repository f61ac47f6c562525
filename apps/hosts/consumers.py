from channels.db import database_sync_to_async

from apps.accounts.permissions import restrict
from apps.core.consumers import LiveConsumer
from apps.hosts.live import HOSTS_GROUP
from apps.hosts.models import Host


@database_sync_to_async
def _visible(user, host_id: int) -> bool:
    return restrict(Host.objects.filter(pk=host_id), user, "host.view", fresh=True).exists()


class HostListConsumer(LiveConsumer):
    """`/ws/hosts/`: status changes of the hosts the user can see (checked per message)."""

    group = HOSTS_GROUP

    async def host_changed(self, event: dict) -> None:
        if await _visible(self.scope["user"], event["host_id"]):
            await self.send_json({"type": "host", "host": event["payload"]})
