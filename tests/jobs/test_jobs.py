"""The job framework on test:/// hosts: claim, the one-active-job rule, validation, cancel, reaping,
and the volume.create kind run in-process by the runner (the worker test runs it in Celery)."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.accounts.models import Role
from apps.accounts.services import grant_role
from apps.audit.models import AuditEvent
from apps.core.errors import AccessDenied, ServiceError
from apps.jobs import runner, services
from apps.jobs.choices import TERMINAL, JobStatus
from apps.jobs.models import Job
from apps.jobs.registry import KINDS, JobKind, get_kind
from kvmpanel.virt import storage
from kvmpanel.virt.errors import HypervisorError

MIB = 1 << 20


def volume(name: str = "data.qcow2", size: int = 4 * MIB, **extra) -> dict:
    return {"pool": "default", "name": name, "capacity_bytes": size, **extra}


def in_pool(host, name: str) -> bool:
    return storage.find_volume_in_pool(host.uri, "default", name) is not None


@pytest.fixture
def vm_kind(monkeypatch):
    """A VM job kind for the one-active-job rule (the real VM kinds come with later slices)."""
    get_kind("volume.create")  # load the built-in kinds first
    kind = JobKind("test.vm", "vm.power", "vm", validate=lambda target, params: params, run=lambda ctx: {})
    monkeypatch.setitem(KINDS, kind.name, kind)
    return kind


def test_a_job_is_claimed_once(world):
    job = Job.objects.create(kind="volume.create", host=world.host, requested_by=world.root, params=volume())
    assert runner._claim(job.pk, "first") is True
    assert runner._claim(job.pk, "second") is False
    assert runner.run_job(job.pk) is None  # already running: another runner has it
    job.refresh_from_db()
    assert (job.status, job.celery_task_id) == (JobStatus.RUNNING, "first")
    assert job.started_at is not None and job.worker_pid


def test_one_active_job_per_vm(world, vm_kind):
    first = services.enqueue_job("test.vm", actor=world.alice, vm=world.vm, params={})
    assert first.host_id == world.vm.host_id
    with pytest.raises(ServiceError) as refused:
        services.enqueue_job("test.vm", actor=world.alice, vm=world.vm, params={})
    assert refused.value.status == 409
    assert refused.value.message == f"Another job (test.vm #{first.pk}) is already running on this VM."
    assert Job.objects.filter(vm=world.vm).count() == 1
    # Another VM is free, and a finished job frees its VM.
    services.enqueue_job("test.vm", actor=world.alice, vm=world.running_vm, params={})
    Job.objects.filter(pk=first.pk).update(status=JobStatus.SUCCEEDED)
    services.enqueue_job("test.vm", actor=world.alice, vm=world.vm, params={})


@pytest.mark.parametrize(
    "params",
    [
        volume(size=0),
        volume(size=-1),
        volume(size=10**30),
        volume(size="12"),
        volume(size=True),
        volume(size=1.5),
        volume(name="a/b"),
        volume(name=".."),
        volume(name="a..qcow2"),
        volume(name="<x>"),
        volume(name="a&b"),
        volume(name="x" * 300),
        volume(name="x" * 64),
        volume(name="vólume"),
        volume(name=""),
        volume(name=None),
        volume(format="vmdk"),
        {**volume(), "pool": "nowhere"},
    ],
)
def test_invalid_volume_requests_are_refused_before_a_job_exists(world, params):
    with pytest.raises(ServiceError) as refused:
        services.enqueue_job("volume.create", actor=world.root, host=world.host, params=params)
    assert refused.value.status == 400
    assert refused.value.message
    assert not Job.objects.exists()


def test_a_volume_beyond_the_pools_free_space_is_refused(world):
    free = {p.name: p for p in storage_pools(world.host)}["default"].available_bytes
    with pytest.raises(ServiceError) as refused:
        services.enqueue_job("volume.create", actor=world.root, host=world.host, params=volume(size=free + 1))
    assert refused.value.status == 400
    assert "free" in refused.value.message
    services.enqueue_job("volume.create", actor=world.root, host=world.host, params=volume(size=free))


def storage_pools(host):
    from kvmpanel.virt import host as virt_host

    return virt_host.list_pools(host.uri)


def test_only_storage_managers_start_volume_jobs(world):
    for user in (world.carol, world.oscar, world.bob):
        with pytest.raises(AccessDenied):
            services.enqueue_job("volume.create", actor=user, host=world.host, params=volume())
    assert not Job.objects.exists()
    assert AuditEvent.objects.filter(verb="volume.create", result="denied").count() == 3


def test_the_runner_creates_the_volume(world):
    job = services.enqueue_job("volume.create", actor=world.root, host=world.host, params=volume(format="raw"))
    assert job.status == JobStatus.QUEUED
    assert runner.run_job(job.pk) == JobStatus.SUCCEEDED
    job.refresh_from_db()
    assert (job.status, job.percent, job.bytes_total, job.error) == (JobStatus.SUCCEEDED, 100, 4 * MIB, "")
    assert job.result == {"path": "/pool/data.qcow2"}
    assert job.finished_at and job.heartbeat_at
    assert in_pool(world.host, "data.qcow2")
    assert [line.line for line in job.log_lines.all()][-1] == "Created /pool/data.qcow2"
    assert AuditEvent.objects.filter(verb="volume.create", result="ok", message="succeeded").exists()
    # The same name again is a clear refusal, not a second job.
    with pytest.raises(ServiceError) as refused:
        services.enqueue_job("volume.create", actor=world.root, host=world.host, params=volume())
    assert refused.value.status == 409


def test_a_job_cancelled_before_it_runs_never_runs(world):
    job = services.enqueue_job("volume.create", actor=world.root, host=world.host, params=volume())
    services.request_cancel(job, actor=world.root)
    job.refresh_from_db()
    assert (job.status, job.cancel_requested) == (JobStatus.CANCELLED, True)
    assert runner.run_job(job.pk) is None
    assert not in_pool(world.host, "data.qcow2")
    with pytest.raises(ServiceError) as refused:
        services.request_cancel(job, actor=world.root)
    assert refused.value.status == 409


def test_a_running_job_stops_at_its_next_check(world, monkeypatch):
    job = services.enqueue_job("volume.create", actor=world.root, host=world.host, params=volume())
    real_claim = runner._claim

    def claim_then_cancel(job_id, task_id):
        claimed = real_claim(job_id, task_id)
        services.request_cancel(Job.objects.get(pk=job_id), actor=world.root)
        return claimed

    monkeypatch.setattr(runner, "_claim", claim_then_cancel)
    assert runner.run_job(job.pk) == JobStatus.CANCELLED
    assert not in_pool(world.host, "data.qcow2")


def test_a_failure_after_the_volume_exists_deletes_it(world, monkeypatch):
    job = services.enqueue_job("volume.create", actor=world.root, host=world.host, params=volume())
    real_progress = runner.JobContext.progress

    def failing_progress(self, **kwargs):
        if kwargs.get("phase") == "done":
            assert in_pool(world.host, "data.qcow2")
            raise HypervisorError("the pool went away", code="failed")
        real_progress(self, **kwargs)

    monkeypatch.setattr(runner.JobContext, "progress", failing_progress)
    assert runner.run_job(job.pk) == JobStatus.FAILED
    job.refresh_from_db()
    assert job.error == "the pool went away"
    assert not in_pool(world.host, "data.qcow2")
    assert "Deleted data.qcow2 again" in [line.line for line in job.log_lines.all()]


def test_an_unexpected_error_fails_the_job_with_the_traceback_in_its_log(world, monkeypatch):
    job = services.enqueue_job("volume.create", actor=world.root, host=world.host, params=volume())

    def boom(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(storage, "create_volume", boom)
    assert runner.run_job(job.pk) == JobStatus.FAILED
    job.refresh_from_db()
    assert job.error == "The job failed unexpectedly; its log has the details."
    assert any("RuntimeError: boom" in line.line for line in job.log_lines.all())


def test_the_runner_rechecks_the_requesters_permission(world):
    job = Job.objects.create(kind="volume.create", host=world.host, requested_by=world.carol, params=volume())
    assert runner.run_job(job.pk) == JobStatus.FAILED
    job.refresh_from_db()
    assert job.error == "You do not have permission to do this."
    assert not in_pool(world.host, "data.qcow2")


def test_stale_running_jobs_are_reaped(world, settings):
    settings.KVMPANEL_JOB_STALE_SECONDS = 5
    old = timezone.now() - timedelta(seconds=30)
    stale = Job.objects.create(
        kind="volume.create", host=world.host, status=JobStatus.RUNNING, started_at=old, heartbeat_at=old
    )
    fresh = Job.objects.create(
        kind="volume.create", host=world.host, status=JobStatus.RUNNING, heartbeat_at=timezone.now()
    )
    queued = Job.objects.create(kind="volume.create", host=world.host)
    assert services.reap_stale_jobs() == [stale.pk]
    stale.refresh_from_db()
    assert (stale.status, stale.error) == (JobStatus.FAILED, "the worker stopped")
    assert Job.objects.get(pk=fresh.pk).status == JobStatus.RUNNING
    assert Job.objects.get(pk=queued.pk).status == JobStatus.QUEUED
    # The command (and every run_job) reaps too.
    Job.objects.filter(pk=fresh.pk).update(heartbeat_at=old)
    call_command("reap_jobs", stale_seconds=5)
    assert Job.objects.get(pk=fresh.pk).status == JobStatus.FAILED
    assert JobStatus.FAILED in TERMINAL


def test_log_lines_and_cancel_checks_write_a_heartbeat_only_now_and_then(world, settings):
    settings.KVMPANEL_JOB_STALE_SECONDS = 60
    old = timezone.now() - timedelta(seconds=2)
    job = Job.objects.create(
        kind="volume.create", host=world.host, requested_by=world.root, status=JobStatus.RUNNING, heartbeat_at=old
    )
    ctx = runner.JobContext(job)  # as after the claim, which wrote a heartbeat a moment ago
    ctx.log("one")
    assert ctx.cancel_requested() is False
    assert Job.objects.get(pk=job.pk).heartbeat_at == old
    ctx._heartbeat_written -= 6  # a tenth of the stale limit, at most 5 s, has passed
    ctx.log("two")
    assert Job.objects.get(pk=job.pk).heartbeat_at > old
    assert list(job.log_lines.values_list("line", flat=True)) == ["one", "two"]


def test_a_job_is_handed_to_celery_under_the_task_id_its_row_was_created_with(world, monkeypatch):
    from apps.jobs.tasks import run_job_task

    sent = []
    monkeypatch.setattr(run_job_task, "apply_async", lambda args, task_id: sent.append((args, task_id)))
    job = services.enqueue_job("volume.create", actor=world.root, host=world.host, params=volume())
    services._dispatch(job.pk)
    assert job.celery_task_id and sent == [((job.pk,), job.celery_task_id)]


def test_steps_after_the_finish_run_once_the_verdict_is_written_and_cannot_change_it(world, monkeypatch):
    seen = []

    def run(ctx):
        ctx.after_finish(lambda: seen.append(Job.objects.get(pk=ctx.job.pk).status))
        ctx.after_finish(lambda: 1 / 0)
        ctx.after_finish(lambda: seen.append("still run"))
        return {}

    get_kind("volume.create")
    monkeypatch.setitem(KINDS, "test.after", JobKind("test.after", "storage.manage", "host", lambda t, p: p, run))
    job = services.enqueue_job("test.after", actor=world.root, host=world.host, params={})
    assert runner.run_job(job.pk) == JobStatus.SUCCEEDED
    assert seen == [JobStatus.SUCCEEDED, "still run"]
    assert Job.objects.get(pk=job.pk).status == JobStatus.SUCCEEDED


def test_a_copy_refused_because_the_name_is_taken_never_deletes_that_volume(world, monkeypatch):
    from kvmpanel.virt import volume_copy

    def taken(*args, **kwargs):
        raise HypervisorError("Pool default already holds a volume named data.qcow2.", code="exists")

    discarded = []
    monkeypatch.setattr(volume_copy, "copy_volume", taken)
    monkeypatch.setattr(volume_copy, "discard_copy", lambda *args, **kwargs: discarded.append(args))

    def run(ctx):
        ctx.copy_volume(world.host.uri, "/pool/vm0000.qcow2", "default", "data.qcow2")
        return {}

    get_kind("volume.create")
    monkeypatch.setitem(KINDS, "test.copy", JobKind("test.copy", "storage.manage", "host", lambda t, p: p, run))
    job = services.enqueue_job("test.copy", actor=world.root, host=world.host, params={})
    assert runner.run_job(job.pk) == JobStatus.FAILED
    job.refresh_from_db()
    assert job.state.get("copying") is None and discarded == []


# ---- the API ----


def api(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_api_starts_a_job_and_answers_202(world):
    response = api(world.root).post(
        reverse("job-list"),
        {"kind": "volume.create", "host": world.host.pk, "params": volume()},
        content_type="application/json",
    )
    assert response.status_code == 202, response.content
    job = response.json()["job"]
    assert (job["kind"], job["status"], job["host"]) == ("volume.create", "queued", world.host.pk)


@pytest.mark.parametrize(("name", "size"), [("a/b", MIB), ("x" * 300, MIB), ("ok.qcow2", 0), ("ok.qcow2", -5)])
def test_the_api_refuses_invalid_volumes_with_400(world, name, size):
    response = api(world.root).post(
        reverse("job-list"),
        {"kind": "volume.create", "host": world.host.pk, "params": volume(name=name, size=size)},
        content_type="application/json",
    )
    assert response.status_code == 400
    assert response.json()["detail"]
    assert not Job.objects.exists()


def test_the_api_shows_each_user_only_the_jobs_they_may_see(world):
    on_host = Job.objects.create(kind="volume.create", host=world.host, requested_by=world.root)
    own = Job.objects.create(kind="volume.create", requested_by=world.bob, status=JobStatus.FAILED)
    on_vm = Job.objects.create(kind="test.vm", vm=world.vm, host=world.host, requested_by=world.root)

    def ids(user, query=""):
        return {row["id"] for row in api(user).get(reverse("job-list") + query).json()["results"]}

    assert ids(world.bob) == {own.pk}
    assert ids(world.carol) == {on_host.pk, on_vm.pk}
    assert ids(world.alice) == {on_vm.pk}
    assert ids(world.root) == {on_host.pk, own.pk, on_vm.pk}
    assert ids(world.root, "?status=failed") == {own.pk}
    assert ids(world.root, f"?vm={world.vm.pk}") == {on_vm.pk}
    assert ids(world.root, "?kind=volume.create") == {on_host.pk, own.pk}
    assert api(world.bob).get(reverse("job-detail", args=[on_host.pk])).status_code == 404


def test_the_detail_has_the_log_and_cancel_works(world):
    job = services.enqueue_job("volume.create", actor=world.root, host=world.host, params=volume())
    response = api(world.root).post(reverse("job-cancel", args=[job.pk]))
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    detail = api(world.root).get(reverse("job-detail", args=[job.pk])).json()
    assert [entry["line"] for entry in detail["log"]] == ["Cancelled before it started"]
    assert api(world.root).post(reverse("job-cancel", args=[job.pk])).status_code == 409


def test_a_clone_through_the_jobs_api_also_needs_vm_create_on_the_host(world):
    cloner = Role.objects.create(name="Cloner", privileges=["vm.view", "vm.clone"])
    grant_role(actor=world.root, role=cloner, scope=world.vm.scope, user=world.bob)
    response = api(world.bob).post(
        reverse("job-list"), {"kind": "vm.clone", "vm": world.vm.pk, "params": {}}, content_type="application/json"
    )
    assert response.status_code == 403, response.content
    assert not Job.objects.filter(vm=world.vm).exists()
