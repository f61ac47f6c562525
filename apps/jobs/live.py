"""Job progress pushed to open pages: values only (ids, numbers, states), never translated text."""

from typing import Any

from apps.core.live import send_after_commit

JOBS_GROUP = "jobs"


def job_group(job_id: int) -> str:
    return f"job-{job_id}"


def job_payload(job) -> dict[str, Any]:
    return {
        "id": job.pk,
        "kind": job.kind,
        "status": job.status,
        "percent": job.percent,
        "bytes_done": job.bytes_done,
        "bytes_total": job.bytes_total,
        "phase": job.phase,
        "vm_id": job.vm_id,
        "host_id": job.host_id,
    }


def publish(job_id: int, message_type: str, payload: dict[str, Any]) -> None:
    """`message_type` is job.progress, job.log or job.finished (a consumer method each)."""
    send_after_commit([JOBS_GROUP, job_group(job_id)], {"type": message_type, "job_id": job_id, "payload": payload})
