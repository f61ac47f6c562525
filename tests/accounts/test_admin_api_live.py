"""Disabling a user or revoking a grant stops their live WebSocket updates on the next message."""

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator

from apps.accounts.admin_services import revoke_grant, set_user_active
from apps.accounts.models import Grant
from apps.vms.live import vm_group
from kvmpanel.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


def _updates_seen(world, user, change) -> tuple[bool, bool]:
    """(an update arrived before `change()`, one arrived after) on alice's VM's live stream."""

    async def run():
        path = f"/ws/vms/{world.vm.pk}/"
        communicator = WebsocketCommunicator(application, path, headers=[(b"origin", b"http://127.0.0.1")])
        communicator.scope["user"] = user
        connected, _code = await communicator.connect()
        assert connected
        assert (await communicator.receive_json_from())["type"] == "hello"
        event = {"type": "vm.changed", "vm_id": world.vm.pk, "payload": {"id": world.vm.pk, "deleted": False}}
        layer = get_channel_layer()
        await layer.group_send(vm_group(world.vm.pk), event)
        before = not await communicator.receive_nothing(timeout=1)
        if before:
            await communicator.receive_json_from()
        await database_sync_to_async(change)()
        await layer.group_send(vm_group(world.vm.pk), event)
        after = not await communicator.receive_nothing(timeout=1)
        await communicator.disconnect()
        return before, after

    return async_to_sync(run)()


def test_a_disabled_user_stops_getting_live_updates(world):
    assert _updates_seen(world, world.alice, lambda: set_user_active(world.alice, actor=world.root, active=False)) == (
        True,
        False,
    )


def test_a_revoked_grant_stops_live_updates_for_that_vm(world):
    owner_grant = Grant.objects.get(user=world.alice, scope=world.vm.scope)
    assert _updates_seen(world, world.alice, lambda: revoke_grant(owner_grant, actor=world.root)) == (True, False)
