"""`/ws/jobs/<id>/`: only a visible job, and the runner's messages reach it."""

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator

from apps.jobs.live import job_group
from apps.jobs.models import Job
from kvmpanel.asgi import application


def _session(world, job_id: int, persona: str | None, message: dict | None = None):
    async def run():
        communicator = WebsocketCommunicator(
            application, f"/ws/jobs/{job_id}/", headers=[(b"origin", b"http://127.0.0.1")]
        )
        if persona:
            communicator.scope["user"] = getattr(world, persona)
        connected, _code = await communicator.connect()
        received = None
        if connected:
            assert (await communicator.receive_json_from(timeout=5)) == {"type": "hello"}
            if message is not None:
                await get_channel_layer().group_send(job_group(job_id), message)
                received = await communicator.receive_json_from(timeout=5)
        await communicator.disconnect()
        return connected, received

    return async_to_sync(run)()


@pytest.mark.django_db(transaction=True)
def test_only_users_who_see_the_job_may_follow_it(world):
    job = Job.objects.create(kind="volume.create", host=world.host, requested_by=world.root)
    assert _session(world, job.pk, None)[0] is False
    assert _session(world, job.pk, "bob")[0] is False
    assert _session(world, job.pk, "alice")[0] is False
    assert _session(world, job.pk, "carol")[0] is True
    assert _session(world, job.pk + 1000, "root")[0] is False


@pytest.mark.django_db(transaction=True)
def test_progress_messages_are_relayed(world):
    job = Job.objects.create(kind="volume.create", host=world.host, requested_by=world.root)
    message = {"type": "job.progress", "job_id": job.pk, "payload": {"id": job.pk, "percent": 42}}
    connected, received = _session(world, job.pk, "carol", message)
    assert connected
    assert received == {"type": "progress", "job_id": job.pk, "payload": {"id": job.pk, "percent": 42}}
