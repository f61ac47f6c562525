"""Disabling a user or revoking a grant closes the live sockets that lost their object at once (the
page stops retrying), and the list streams stop relaying what the user may no longer see."""

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import Group

from apps.accounts.admin_services import revoke_grant, set_user_active, update_role
from apps.accounts.models import Grant, Role
from apps.accounts.services import grant_role
from apps.vms.live import VMS_GROUP, vm_group
from kvmpanel.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)

CLOSED_SOON_SECONDS = 3


def _after_change(world, user, change, path: str | None = None) -> dict:
    """Open `path` (alice's VM page stream by default) as `user`, check an update arrives, run `change`
    and return what the socket did next: {"closed": code} or {"updates": bool}."""

    async def run():
        communicator = WebsocketCommunicator(
            application, path or f"/ws/vms/{world.vm.pk}/", headers=[(b"origin", b"http://127.0.0.1")]
        )
        communicator.scope["user"] = user
        connected, _code = await communicator.connect()
        assert connected
        assert (await communicator.receive_json_from())["type"] == "hello"
        event = {"type": "vm.changed", "vm_id": world.vm.pk, "payload": {"id": world.vm.pk, "deleted": False}}
        layer = get_channel_layer()
        group = VMS_GROUP if path == "/ws/vms/" else vm_group(world.vm.pk)
        await layer.group_send(group, event)
        assert (await communicator.receive_json_from(timeout=CLOSED_SOON_SECONDS))["type"] == "vm"
        await database_sync_to_async(change)()
        if await communicator.receive_nothing(timeout=CLOSED_SOON_SECONDS):
            await layer.group_send(group, event)
            outcome = {"updates": not await communicator.receive_nothing(timeout=1)}
        else:
            output = await communicator.receive_output()
            assert output["type"] == "websocket.close", output
            outcome = {"closed": output.get("code")}
        await communicator.disconnect()
        return outcome

    return async_to_sync(run)()


def test_disabling_a_user_closes_their_live_sockets_at_once(world):
    assert _after_change(world, world.alice, lambda: set_user_active(world.alice, actor=world.root, active=False)) == {
        "closed": 4401
    }


def test_disabling_a_user_closes_their_list_stream_too(world):
    change = lambda: set_user_active(world.alice, actor=world.root, active=False)  # noqa: E731
    assert _after_change(world, world.alice, change, path="/ws/vms/") == {"closed": 4401}


def test_revoking_the_grant_closes_that_vms_stream_at_once(world):
    owner_grant = Grant.objects.get(user=world.alice, scope=world.vm.scope)
    assert _after_change(world, world.alice, lambda: revoke_grant(owner_grant, actor=world.root)) == {"closed": 4404}


def test_a_revoked_grant_keeps_the_list_stream_open_but_silent_about_that_vm(world):
    owner_grant = Grant.objects.get(user=world.alice, scope=world.vm.scope)
    change = lambda: revoke_grant(owner_grant, actor=world.root)  # noqa: E731
    assert _after_change(world, world.alice, change, path="/ws/vms/") == {"updates": False}


def test_removing_a_user_from_the_group_that_gave_access_closes_the_stream(world):
    team = Group.objects.create(name="team")
    team.user_set.add(world.bob)
    grant_role(actor=world.root, role="VMUser", scope=world.vm.scope, group=team)
    assert _after_change(world, world.bob, lambda: team.user_set.remove(world.bob)) == {"closed": 4404}


def test_taking_vm_view_out_of_a_custom_role_closes_the_stream(world):
    watchers = Role.objects.create(name="Watchers", privileges=["vm.view"])
    grant_role(actor=world.root, role=watchers, scope=world.vm.scope, user=world.bob)
    change = lambda: update_role(watchers, actor=world.root, privileges=["vm.console.view"])  # noqa: E731
    assert _after_change(world, world.bob, change) == {"closed": 4404}


def test_a_change_that_keeps_access_leaves_the_stream_open(world):
    change = lambda: grant_role(actor=world.root, role="Auditor", scope="/", user=world.alice)  # noqa: E731
    assert _after_change(world, world.alice, change) == {"updates": True}
