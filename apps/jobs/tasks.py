"""Thin Celery tasks: take ids, call the runner or a service."""

from celery import shared_task

from apps.jobs import runner


@shared_task(name="jobs.run", bind=True)
def run_job_task(self, job_id: int) -> str | None:
    return runner.run_job(job_id, task_id=self.request.id or "")


@shared_task(name="jobs.reap")
def reap_jobs_task() -> list[int]:
    """Run from Celery beat: fail running jobs whose worker stopped."""
    return runner.reap_dead_jobs()
