"""Every write to a Job: enqueue, cancel, reap. The runner (runner.py) does the rest."""

import socket
import uuid
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.accounts.permissions import has_privilege, restrict
from apps.audit.choices import AuditResult
from apps.audit.services import record_event
from apps.core.errors import AccessDenied, ServiceError
from apps.hosts.models import Host
from apps.jobs import live
from apps.jobs.choices import JobStatus
from apps.jobs.models import Job, JobLogLine
from apps.jobs.registry import get_kind
from apps.vms.models import VirtualMachine

WORKER_STOPPED = "the worker stopped"


def visible_jobs(user):
    """Jobs `user` may see: their own, and those on VMs and hosts they can see."""
    if not (user.is_authenticated and user.is_active):
        return Job.objects.none()
    if user.is_superuser:
        return Job.objects.all()
    vms = restrict(VirtualMachine.objects.all(), user, "vm.view").values("pk")
    hosts = restrict(Host.objects.all(), user, "host.view").values("pk")
    return Job.objects.filter(Q(requested_by=user) | Q(vm__in=vms) | Q(host__in=hosts))


def enqueue_job(
    kind: str, *, actor, vm: VirtualMachine | None = None, host: Host | None = None, params=None, client_address=None
) -> Job:
    """Authorize, validate, save a queued Job and hand it to a worker after the commit."""
    job_kind = get_kind(kind)
    if job_kind is None:
        raise ServiceError(_("Unknown job kind %(kind)s.") % {"kind": kind}, code="invalid-kind")
    target = vm if job_kind.target == "vm" else host
    if target is None:
        raise ServiceError(_("Choose the host or VM this job runs on."), code="invalid-target")
    if not may_run(actor, job_kind, target, params):
        record_event(actor=actor, verb=kind, target=target, result=AuditResult.DENIED, client_address=client_address)
        raise AccessDenied()
    cleaned = job_kind.validate(target, dict(params or {}))
    if vm is not None and host is None:
        host = vm.host
    refusal = None
    try:
        with transaction.atomic():
            if job_kind.reserve is not None:
                try:
                    cleaned = {**cleaned, "reservation": job_kind.reserve(actor, target, cleaned)}
                except ServiceError as error:
                    refusal = error
                    raise
            # The Celery task id is chosen here, so handing the job over after the commit writes nothing.
            job = Job.objects.create(
                kind=kind, vm=vm, host=host, requested_by=actor, params=cleaned, celery_task_id=str(uuid.uuid4())
            )
            record_event(
                actor=actor,
                verb=kind,
                target=target,
                message="queued",
                detail={"job": job.pk, "params": cleaned},
                client_address=client_address,
            )
            live.publish(job.pk, "job.progress", live.job_payload(job))
            transaction.on_commit(lambda: _dispatch(job.pk))
    except ServiceError as error:
        if error is refusal:  # recorded after the rollback, so the record stays
            _audit_refusal(job_kind, actor, target, cleaned, error, client_address)
        raise
    except IntegrityError as error:
        active = Job.objects.filter(vm=vm, status__in=[JobStatus.QUEUED, JobStatus.RUNNING]).first()
        if vm is None or active is None:
            raise
        raise ServiceError(
            _("Another job (%(kind)s #%(id)s) is already running on this VM.") % {"kind": active.kind, "id": active.pk},
            status=409,
            code="job-active",
        ) from error
    return job


def may_run(user, job_kind, target, params=None, *, fresh: bool = False) -> bool:
    """The kind's privilege on its target (or its own `authorize`), and its host privilege on the
    target VM's host if any."""
    if job_kind.authorize is not None:
        if not job_kind.authorize(user, target, params or {}, fresh):
            return False
    elif not has_privilege(user, target, job_kind.privilege, fresh=fresh):
        return False
    host = getattr(target, "host", None)
    return not (job_kind.host_privilege and host is not None) or has_privilege(
        user, host, job_kind.host_privilege, fresh=fresh
    )


def _audit_refusal(job_kind, actor, target, cleaned, refusal: ServiceError, client_address) -> None:
    """A reservation refused (no right on the project, over quota) is in the audit log like any refusal."""
    record_event(
        actor=actor,
        verb=job_kind.name,
        target=target,
        result=AuditResult.DENIED if isinstance(refusal, AccessDenied) else AuditResult.FAILED,
        message=refusal.message,
        detail={"code": refusal.code, "project": cleaned.get("project")},
        client_address=client_address,
    )


def _dispatch(job_id: int) -> None:
    """Hand a committed job to a worker under the task id its row already has: no write here, which
    would compete with the worker's claim for the database's write lock."""
    from apps.jobs.tasks import run_job_task

    task_id = Job.objects.filter(pk=job_id).values_list("celery_task_id", flat=True).first()
    run_job_task.apply_async((job_id,), task_id=task_id or None)


def can_cancel(user, job: Job) -> bool:
    job_kind = get_kind(job.kind)
    if job.requested_by_id is not None and job.requested_by_id == user.pk:
        return True
    return job_kind is not None and job.target is not None and has_privilege(user, job.target, job_kind.privilege)


def request_cancel(job: Job, *, actor, client_address=None) -> Job:
    """A queued job is cancelled at once (it never runs); a running one stops at its next check."""
    if not can_cancel(actor, job):
        raise AccessDenied()
    now = timezone.now()
    if Job.objects.filter(pk=job.pk, status=JobStatus.QUEUED).update(
        status=JobStatus.CANCELLED, cancel_requested=True, finished_at=now
    ):
        JobLogLine.objects.create(job=job, line="Cancelled before it started")
    elif not Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING).update(cancel_requested=True):
        raise ServiceError(_("The job has already finished."), status=409, code="finished")
    job.refresh_from_db()
    record_event(
        actor=actor, verb="job.cancel", target=job.target, detail={"job": job.pk}, client_address=client_address
    )
    live.publish(job.pk, "job.finished" if job.status == JobStatus.CANCELLED else "job.progress", live.job_payload(job))
    return job


def _worker_is_gone(job: Job) -> bool:
    """A worker on this machine whose process no longer exists (killed, crashed) is gone for sure;
    one elsewhere is judged by its heartbeat alone."""
    if not job.worker_pid or job.worker_hostname != socket.gethostname()[:255]:
        return False
    try:
        command_line = Path(f"/proc/{job.worker_pid}/cmdline").read_bytes()
    except OSError:
        return True
    return b"celery" not in command_line and b"pytest" not in command_line  # the pid was reused


def reap_stale_jobs(*, stale_seconds: float | None = None) -> list[int]:
    """Fail running jobs whose worker is gone: its process died on this machine, or it stopped
    sending heartbeats. Returns their ids (runner.reap_dead_jobs also cleans up after them)."""
    if stale_seconds is None:
        stale_seconds = settings.KVMPANEL_JOB_STALE_SECONDS
    cutoff = timezone.now() - timedelta(seconds=stale_seconds)
    reaped = []
    running = Job.objects.filter(status=JobStatus.RUNNING)
    stale = [
        job
        for job in running
        if (job.heartbeat_at or job.started_at or job.created_at) < cutoff or _worker_is_gone(job)
    ]
    for job in stale:
        updated = Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING, heartbeat_at=job.heartbeat_at).update(
            status=JobStatus.FAILED, error=WORKER_STOPPED, finished_at=timezone.now()
        )
        if updated:
            JobLogLine.objects.create(job=job, line=f"Failed: {WORKER_STOPPED} (no heartbeat since {job.heartbeat_at})")
            job.refresh_from_db()
            record_event(
                actor=None,
                verb=job.kind,
                target=job.target,
                result=AuditResult.FAILED,
                message=WORKER_STOPPED,
                detail={"job": job.pk},
            )
            live.publish(job.pk, "job.finished", live.job_payload(job) | {"error": job.error})
            reaped.append(job.pk)
    return reaped
