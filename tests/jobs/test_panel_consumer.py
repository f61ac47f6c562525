"""`/ws/jobs/`: the task panel's stream relays progress of the jobs the user may see, and only those,
with one visibility query per job per recheck interval (not one per message)."""

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator

from apps.accounts.models import Grant
from apps.jobs import consumers
from apps.jobs.live import JOBS_GROUP, job_payload
from apps.jobs.models import Job
from kvmpanel.asgi import application


def progress(job: Job, **changes) -> dict:
    return {"type": "job.progress", "job_id": job.pk, "payload": job_payload(job) | changes}


def listen(user, messages: list[dict]) -> list[dict]:
    """Connect as `user`, send `messages` to the jobs group, return what the socket received."""

    async def run():
        communicator = WebsocketCommunicator(application, "/ws/jobs/", headers=[(b"origin", b"http://127.0.0.1")])
        communicator.scope["user"] = user
        connected, _code = await communicator.connect()
        assert connected
        assert (await communicator.receive_json_from(timeout=5)) == {"type": "hello"}
        layer = get_channel_layer()
        received = []
        for message in messages:
            await layer.group_send(JOBS_GROUP, message)
        # A marker job everyone may see ends the stream: what came before it is all there is.
        await layer.group_send(JOBS_GROUP, {"type": "job.finished", "job_id": -1, "payload": {}})
        while True:
            message = await communicator.receive_json_from(timeout=5)
            if message["job_id"] == -1:
                break
            received.append(message)
        await communicator.disconnect()
        return received

    return async_to_sync(run)()


@pytest.fixture
def marker(monkeypatch):
    """Job -1 is visible to everyone (the end-of-test marker); every other answer is the real gate."""
    real = consumers._visibility

    async def visibility(user, job_id, *, fresh):
        if job_id == -1:
            return True, False
        return await real(user, job_id, fresh=fresh)

    monkeypatch.setattr(consumers, "_visibility", visibility)
    return real


@pytest.mark.django_db(transaction=True)
def test_the_stream_relays_only_jobs_the_user_may_see(world, marker):
    roots = Job.objects.create(kind="volume.create", host=world.host, requested_by=world.root)
    bobs = Job.objects.create(kind="volume.create", host=world.host, requested_by=world.bob)
    alices = Job.objects.create(kind="volume.create", vm=world.vm, host=world.host, requested_by=world.alice)
    messages = [progress(roots, percent=10), progress(bobs, percent=20), progress(alices, percent=30)]

    got = {user: listen(getattr(world, user), messages) for user in ("bob", "alice", "carol", "root")}

    assert [(m["job_id"], m["mine"]) for m in got["bob"]] == [(bobs.pk, True)]  # his own, nothing else
    assert [(m["job_id"], m["mine"]) for m in got["alice"]] == [(alices.pk, True)]  # her VM's job
    assert [(m["job_id"], m["mine"]) for m in got["carol"]] == [(roots.pk, False), (bobs.pk, False), (alices.pk, False)]
    assert [m["job_id"] for m in got["root"]] == [roots.pk, bobs.pk, alices.pk]
    assert got["bob"][0] == {
        "type": "progress",
        "job_id": bobs.pk,
        "payload": job_payload(bobs) | {"percent": 20},
        "mine": True,
    }


@pytest.mark.django_db(transaction=True)
def test_log_lines_stay_on_the_jobs_own_stream(world, marker):
    job = Job.objects.create(kind="volume.create", host=world.host, requested_by=world.root)
    log = {"type": "job.log", "job_id": job.pk, "payload": {"at": "2026-01-01T00:00:00+00:00", "line": "hello"}}
    finished = {"type": "job.finished", "job_id": job.pk, "payload": job_payload(job) | {"status": "succeeded"}}
    assert [m["type"] for m in listen(world.root, [log, finished])] == ["finished"]


@pytest.mark.django_db(transaction=True)
def test_many_progress_messages_cost_one_visibility_query(world, marker, monkeypatch):
    job = Job.objects.create(kind="volume.create", host=world.host, requested_by=world.alice)
    checks = []

    async def counted(user, job_id, *, fresh):
        if job_id == -1:
            return True, False
        checks.append(job_id)
        return await marker(user, job_id, fresh=fresh)

    monkeypatch.setattr(consumers, "_visibility", counted)
    received = listen(world.carol, [progress(job, percent=n) for n in range(50)])
    assert [m["payload"]["percent"] for m in received] == list(range(50))
    assert checks.count(job.pk) == 1


@pytest.mark.django_db(transaction=True)
def test_a_revoked_grant_stops_the_stream_at_the_next_recheck(world, monkeypatch):
    monkeypatch.setattr(consumers, "RECHECK_SECONDS", 0)
    job = Job.objects.create(kind="volume.create", host=world.host, requested_by=world.root)
    revoke = database_sync_to_async(lambda: Grant.objects.filter(user=world.carol).delete())

    async def run():
        communicator = WebsocketCommunicator(application, "/ws/jobs/", headers=[(b"origin", b"http://127.0.0.1")])
        communicator.scope["user"] = world.carol
        assert (await communicator.connect())[0]
        await communicator.receive_json_from(timeout=5)  # hello
        layer = get_channel_layer()
        await layer.group_send(JOBS_GROUP, progress(job, percent=1))
        first = await communicator.receive_json_from(timeout=5)
        await revoke()
        await layer.group_send(JOBS_GROUP, progress(job, percent=2))
        silent = await communicator.receive_nothing(timeout=1)
        await communicator.disconnect()
        return first["payload"]["percent"], silent

    assert async_to_sync(run)() == (1, True)


@pytest.mark.django_db(transaction=True)
def test_anonymous_visitors_are_refused(world):
    async def run():
        communicator = WebsocketCommunicator(application, "/ws/jobs/", headers=[(b"origin", b"http://127.0.0.1")])
        connected, code = await communicator.connect()
        await communicator.disconnect()
        return connected, code

    assert async_to_sync(run)() == (False, 4401)
