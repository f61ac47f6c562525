"""A Celery worker killed with SIGKILL in the middle of a clone's disk copy, on lab host 1.

The job must end up failed (not running forever), the VM's lock must be free again, and what the job
had started must be undone: the copy libvirtd carries on with is stopped and its volume deleted.
"""

import os
import signal
from pathlib import Path

import pytest

from apps.jobs import runner, services
from apps.jobs.choices import TERMINAL, JobStatus
from apps.jobs.models import Job
from apps.vms import services as vm_services
from kvmpanel.virt import storage
from kvmpanel.virt import xml as domain_xml
from tests.support.lab import GUEST_PREFIX, wait_for
from tests.support.volumes import LAB_POOL

pytestmark = pytest.mark.lab


def _qemu_img_writing(name: str) -> bool:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv and argv[0].endswith(b"qemu-img") and any(arg.endswith(name.encode()) for arg in argv):
                return True
    return False


@pytest.fixture
def big_vm(lab_host, operator, data_volume):
    """A shut-off VM whose disk holds 1.5 GiB of data: its copy takes long enough to be interrupted."""
    disk = data_volume(fmt="qcow2", capacity_bytes=2 << 30, data_bytes=1536 << 20)
    name = f"{GUEST_PREFIX}big-{os.getpid()}"
    spec = vm_services.tiny_guest_spec(name, disk_path=disk, iso_path="")
    return vm_services.define_vm(lab_host, domain_xml.build_domain_xml(spec), actor=operator)


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_copy_leaves_the_job_failed_the_lock_free_and_no_volume(worker, big_vm, operator):
    job = services.enqueue_job("vm.clone", actor=operator, vm=big_vm, params={})
    copy_name = job.params["copies"][0]["name"]
    wait_for(
        lambda: _qemu_img_writing(copy_name) or Job.objects.get(pk=job.pk).status in TERMINAL,
        60,
        "the clone's qemu-img copy to start",
        interval=0.02,
    )
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING, (job.error, list(job.log_lines.values_list("line", flat=True)))

    os.kill(worker.pid, signal.SIGKILL)
    worker.wait(timeout=10)
    assert Job.objects.get(pk=job.pk).status == JobStatus.RUNNING  # nobody has noticed yet

    assert runner.reap_dead_jobs() == [job.pk]  # what Celery beat runs every 15 s
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.error == services.WORKER_STOPPED
    log = list(job.log_lines.values_list("line", flat=True))
    assert any("Stopped the copy" in line for line in log), log
    assert storage.find_volume_in_pool(big_vm.host.uri, LAB_POOL, copy_name) is None
    assert not _qemu_img_writing(copy_name)

    again = services.enqueue_job("vm.clone", actor=operator, vm=big_vm, params={})  # the lock is free
    services.request_cancel(again, actor=operator)
