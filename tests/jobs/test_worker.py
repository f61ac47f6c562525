"""A real Celery worker runs a volume.create job on lab host 1, enqueued through the service."""

import os
import time

import pytest

from apps.jobs import services
from apps.jobs.choices import TERMINAL, JobStatus
from apps.jobs.models import Job

pytestmark = pytest.mark.lab


@pytest.mark.django_db(transaction=True)
def test_a_worker_creates_a_volume_on_a_lab_host(worker, lab, lab_host, operator):
    name = f"t-job-{os.getpid()}.qcow2"
    lab.virsh(1, "vol-delete", "--pool", "default", name, check=False)
    job = services.enqueue_job(
        "volume.create",
        actor=operator,
        host=lab_host,
        params={"pool": "default", "name": name, "format": "qcow2", "capacity_bytes": 8 << 20},
    )
    try:
        deadline = time.monotonic() + 60
        while Job.objects.get(pk=job.pk).status not in TERMINAL and time.monotonic() < deadline:
            time.sleep(0.2)
        job.refresh_from_db()
        assert job.status == JobStatus.SUCCEEDED, (job.error, [line.line for line in job.log_lines.all()])
        assert job.celery_task_id and job.worker_pid and job.worker_pid != os.getpid()
        info = lab.virsh(1, "vol-info", "--pool", "default", name, "--bytes")
        assert "8388608 bytes" in info.stdout
        assert job.result["path"].endswith("/" + name)
    finally:
        lab.virsh(1, "vol-delete", "--pool", "default", name, check=False)
