"""The one job runner: claim (compare-and-swap) → run → finish (STYLE.md 6)."""

import logging
import os
import socket
import time
import traceback
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.audit.choices import AuditResult
from apps.audit.services import record_event
from apps.core.errors import ServiceError
from apps.jobs import live
from apps.jobs.choices import JobStatus
from apps.jobs.models import Job, JobLogLine
from apps.jobs.registry import get_kind
from apps.jobs.services import may_run, reap_stale_jobs
from kvmpanel.virt import volume_copy
from kvmpanel.virt.errors import HypervisorError

log = logging.getLogger(__name__)


class Cancelled(Exception):  # a request to stop, raised by check_cancel
    pass


class JobContext:
    """What a job kind's function sees: its job, progress, log, cancel checks and a scratch `state`
    (what it created, for cleanup). Every report is also a heartbeat: progress and `remember` write
    one with their own update; log lines and cancel checks only when the last one is a while ago
    (each write is a commit, and a copy's progress loop checks for cancel twice a second)."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.state: dict[str, Any] = dict(job.state)
        # The claim (or whoever loaded the row) wrote the last heartbeat a moment ago.
        self._heartbeat_written = time.monotonic()
        self._after_finish: list[Callable[[], None]] = []

    def after_finish(self, step: Callable[[], None]) -> None:
        """Run `step` once the job's verdict is written and pushed, whatever it is: for work nobody
        waits for, such as refreshing the storage inventory (a cache) for the volumes a job made. A
        step that fails is logged; the verdict stands."""
        self._after_finish.append(step)

    def remember(self, **items: Any) -> None:
        """Persist what the job created (JSON values), so cleanup can undo it after a crash too."""
        self.state.update(items)
        self._update(state=self.state)

    def cancel_requested(self) -> bool:
        """Whether a cancel was asked for (also a heartbeat); for loops that stop work themselves."""
        self.heartbeat()
        return Job.objects.filter(pk=self.job.pk, cancel_requested=True).exists()

    def _update(self, **fields) -> None:
        fields["heartbeat_at"] = timezone.now()
        Job.objects.filter(pk=self.job.pk).update(**fields)
        self._heartbeat_written = time.monotonic()
        for name, value in fields.items():
            setattr(self.job, name, value)

    def heartbeat(self) -> None:
        """Tell the reaper this job is alive, unless that was said recently: a tenth of the stale
        limit (at most 5 s) keeps a live job far from being reaped."""
        every = min(5.0, settings.KVMPANEL_JOB_STALE_SECONDS / 10)
        if time.monotonic() - self._heartbeat_written >= every:
            self._update()

    def progress(
        self,
        *,
        percent: int | None = None,
        bytes_done: int | None = None,
        bytes_total: int | None = None,
        phase: str | None = None,
    ) -> None:
        fields: dict[str, Any] = {}
        if percent is not None:
            fields["percent"] = max(0, min(100, int(percent)))
        if bytes_done is not None:
            fields["bytes_done"] = int(bytes_done)
        if bytes_total is not None:
            fields["bytes_total"] = int(bytes_total)
        if phase is not None:
            fields["phase"] = phase[:64]
        self._update(**fields)
        live.publish(self.job.pk, "job.progress", live.job_payload(self.job))

    def log(self, line: str) -> None:
        entry = JobLogLine.objects.create(job_id=self.job.pk, line=line)
        self.heartbeat()
        live.publish(self.job.pk, "job.log", {"at": entry.at.isoformat(), "line": line})

    def copy_volume(
        self,
        uri: str,
        source_path: str,
        pool: str,
        name: str,
        *,
        fmt: str | None = None,
        progress: Callable[[int, int], None] | None = None,
        made: Callable[[str], dict[str, Any]] | None = None,
    ) -> str:
        """volume_copy.copy_volume with this job's cancel flag, recorded while it runs: should the
        worker die mid-copy, the cleanup stops the copy (libvirtd carries on without us) and deletes
        the half-made volume. Once it returns, the new volume is the kind's to remember: `made(path)`
        gives what to remember about it, written with the end of the copy's record (one write, and
        no moment in which a dead worker's cleanup would know of neither)."""
        self.remember(copying={"uri": uri, "pool": pool, "name": name})
        try:
            path = volume_copy.copy_volume(
                uri, source_path, pool, name, fmt=fmt, progress=progress, cancelled=self.cancel_requested
            )
        except HypervisorError as error:
            if error.code == "cancelled":
                raise Cancelled() from error
            if error.code == "exists":  # refused before anything was written: that volume is not ours
                self.remember(copying=None)
            raise
        self.remember(copying=None, **(made(path) if made is not None else {}))
        return path

    def check_cancel(self) -> None:
        if self.cancel_requested():
            raise Cancelled()


def _claim(job_id: int, task_id: str) -> bool:
    now = timezone.now()
    return (
        Job.objects.filter(pk=job_id, status=JobStatus.QUEUED).update(
            status=JobStatus.RUNNING,
            started_at=now,
            heartbeat_at=now,
            worker_hostname=socket.gethostname()[:255],
            worker_pid=os.getpid(),
            celery_task_id=task_id,
        )
        == 1
    )


def _finish(ctx: JobContext, status: str, *, error: str = "", result: dict | None = None) -> None:
    job = ctx.job
    fields: dict[str, Any] = {"status": status, "error": error, "finished_at": timezone.now()}
    if result is not None:
        fields["result"] = result
    if status == JobStatus.SUCCEEDED:
        fields["percent"] = 100
    audit_result = {JobStatus.SUCCEEDED: AuditResult.OK, JobStatus.FAILED: AuditResult.FAILED}.get(
        status, AuditResult.REFUSED
    )
    # The verdict and its audit event in one commit. Only a job still running is finished here: a
    # reaped job keeps its verdict.
    with transaction.atomic():
        if not Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING).update(**fields):
            return
        for name, value in fields.items():
            setattr(job, name, value)
        record_event(
            actor=job.requested_by,
            verb=job.kind,
            target=job.target,
            result=audit_result,
            message=error or status,
            detail={"job": job.pk, "result": job.result},
        )
        live.publish(job.pk, "job.finished", live.job_payload(job) | {"error": job.error})


def _cleanup(ctx: JobContext, kind) -> None:
    try:
        copying = ctx.state.get("copying")
        if copying:
            volume_copy.discard_copy(copying["uri"], copying["pool"], copying["name"])
            ctx.log(f"Stopped the copy to {copying['pool']}/{copying['name']} and deleted it")
            ctx.remember(copying=None)
        if kind.cleanup is not None:
            kind.cleanup(ctx)
    except Exception:  # a failed cleanup is logged; the job's own verdict stands
        log.exception("cleanup of job %s failed", ctx.job.pk)
        JobLogLine.objects.create(job_id=ctx.job.pk, line="Cleanup failed:\n" + traceback.format_exc())


def reap_dead_jobs() -> list[int]:
    """Fail the jobs whose worker is gone, then undo what each had created (from Job.state)."""
    reaped = reap_stale_jobs()
    if not reaped:  # the usual case, and it runs before every job: not even a query to build
        return reaped
    for job in Job.objects.filter(pk__in=reaped).select_related("vm", "host", "requested_by"):
        kind = get_kind(job.kind)
        if kind is not None and job.state:
            ctx = JobContext(job)
            ctx.log("Cleaning up after the worker that ran this job")
            _cleanup(ctx, kind)
    return reaped


def run_job(job_id: int, *, task_id: str = "") -> str | None:
    """Run one job; returns its final status, or None when another runner has it (or it was cancelled)."""
    reap_dead_jobs()
    if not _claim(job_id, task_id):
        return None
    job = Job.objects.select_related("vm", "host", "requested_by").get(pk=job_id)
    ctx = JobContext(job)
    status = _run_claimed(ctx)
    for step in ctx._after_finish:
        try:
            step()
        except Exception:
            log.exception("a step after job %s failed", job.pk)
    return status


def _run_claimed(ctx: JobContext) -> str:
    job = ctx.job
    kind = get_kind(job.kind)
    if kind is None:
        _finish(ctx, JobStatus.FAILED, error=_("Unknown job kind %(kind)s.") % {"kind": job.kind})
        return JobStatus.FAILED
    target = job.vm if kind.target == "vm" else job.host
    user = job.requested_by
    if target is None or user is None or not may_run(user, kind, target, job.params, fresh=True):
        ctx.log("Refused: the requester no longer has permission, or the target is gone")
        _finish(ctx, JobStatus.FAILED, error=_("You do not have permission to do this."))
        return JobStatus.FAILED
    live.publish(job.pk, "job.progress", live.job_payload(job))
    try:
        result = kind.run(ctx) or {}
    except Cancelled:
        ctx.log("Cancelled")
        _cleanup(ctx, kind)
        _finish(ctx, JobStatus.CANCELLED)
        return JobStatus.CANCELLED
    except (HypervisorError, ServiceError) as error:
        ctx.log(f"Failed: {error}")
        _cleanup(ctx, kind)
        _finish(ctx, JobStatus.FAILED, error=str(error))
        return JobStatus.FAILED
    except Exception:
        log.exception("job %s failed", job.pk)
        JobLogLine.objects.create(job_id=job.pk, line=traceback.format_exc())
        _cleanup(ctx, kind)
        _finish(ctx, JobStatus.FAILED, error=_("The job failed unexpectedly; its log has the details."))
        return JobStatus.FAILED
    _finish(ctx, JobStatus.SUCCEEDED, result=result)
    return JobStatus.SUCCEEDED
