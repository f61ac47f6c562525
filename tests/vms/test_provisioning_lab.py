"""Create and clone on a real libvirtd (lab host 1, QEMU under TCG), run by a real Celery worker.

The install test is the issue's proof: the lab's installer ISO writes the empty disk and powers the
VM off; the job ejects the ISO, boots from the disk, and the serial console then shows the installed
system's banner.
"""

import time

import pytest

from apps.jobs import services as job_services
from apps.jobs.choices import TERMINAL, JobStatus
from apps.jobs.models import Job
from apps.vms import provisioning
from apps.vms.models import VirtualMachine
from kvmpanel.virt import domain, storage
from tests.support.lab import GUEST_PREFIX, boots_seen, serial_log, wait_for

pytestmark = [pytest.mark.lab, pytest.mark.django_db(transaction=True)]

MIB = 1 << 20
INSTALLED_BANNER = b"INSTALLED SYSTEM (booted from disk)"


def tiny(name: str, **changes) -> dict:
    """The lab's tiny guest through the wizard's parameters (q35, virtio disk and NIC, TCG: its kernel
    is not meant for the nested KVM the lab host offers, LAB.md §2)."""
    return {
        "name": name,
        "virt_type": "qemu",
        "os_variant": "linux",
        "vcpus": 1,
        "max_vcpus": 2,
        "memory_mib": 256,
        "max_memory_mib": 256,
        "disk_pool": "default",
        "disk_size_bytes": 64 * MIB,
        "iso_pool": "iso",
        "iso_volume": "labos-install.iso",
        "network": "lab-iso",
        **changes,
    }


def finished(job: Job, timeout: float) -> Job:
    wait_for(lambda: Job.objects.get(pk=job.pk).status in TERMINAL, timeout, f"job {job.kind} #{job.pk} to finish")
    job.refresh_from_db()
    return job


def log_of(job: Job) -> list[str]:
    return [line.line for line in job.log_lines.all()]


def test_an_install_from_iso_ends_running_from_disk(worker, lab, lab_host, operator):
    name = f"{GUEST_PREFIX}inst-{int(time.time())}"
    serial_log(1, name).unlink(missing_ok=True)
    started = time.monotonic()
    job = provisioning.create_vm(lab_host, tiny(name, install=True, install_timeout_seconds=180), actor=operator)
    phases = set()
    while (current := Job.objects.get(pk=job.pk)).status not in TERMINAL and time.monotonic() - started < 240:
        phases.add(current.phase)
        time.sleep(0.2)
    job = finished(job, 1)
    took = time.monotonic() - started
    assert job.status == JobStatus.SUCCEEDED, (job.error, log_of(job))
    assert "installing" in phases  # the others pass in a moment: the log has them
    lines = log_of(job)
    assert any(line.startswith(f"$ virsh change-media {name} sda --eject --config") for line in lines), lines
    assert "Booted from disk with the installer media ejected" in lines
    vm = VirtualMachine.objects.get(pk=job.result["vm"])
    assert vm.owner == operator
    # The installer wrote the disk and powered off; the job booted the installed system from it.
    wait_for(lambda: INSTALLED_BANNER in serial_log(1, name).read_bytes(), 60, "the installed system's banner")
    log = serial_log(1, name).read_bytes()
    assert b"LABOS install done" in log and log.index(b"LABOS install done") < log.index(INSTALLED_BANNER)
    summary = domain.get_domain(lab_host.uri, vm.uuid, with_addresses=False)
    assert summary.state == "running"
    assert [d.source for d in summary.disks if d.device == "cdrom"] == [""]  # ejected
    print(f"install-from-ISO job: {took:.1f} s to running from disk")


def test_a_cancelled_install_leaves_no_volume_and_no_vm(worker, lab, lab_host, operator):
    # The live ISO never powers off by itself: the job waits in "installing" until it is cancelled.
    name = f"{GUEST_PREFIX}cancel-{int(time.time())}"
    job = provisioning.create_vm(lab_host, tiny(name, install=True, iso_volume="labos-live.iso"), actor=operator)
    wait_for(lambda: Job.objects.get(pk=job.pk).phase == "installing", 60, "the installer to run")
    assert domain.domain_exists(lab_host.uri, name=name)
    assert storage.find_volume_in_pool(lab_host.uri, "default", f"{name}.qcow2") is not None
    job_services.request_cancel(Job.objects.get(pk=job.pk), actor=operator)
    job = finished(job, 30)
    assert job.status == JobStatus.CANCELLED, (job.error, log_of(job))
    assert not domain.domain_exists(lab_host.uri, name=name)
    assert storage.find_volume_in_pool(lab_host.uri, "default", f"{name}.qcow2") is None
    assert not VirtualMachine.objects.filter(host=lab_host, name=name).exists()


def test_a_clone_boots_with_a_new_mac_on_its_own_disk(worker, lab, lab_host, make_guest, operator):
    source = make_guest("src")
    job = provisioning.clone_vm(source, {"start": True}, actor=operator)
    job = finished(job, 120)
    assert job.status == JobStatus.SUCCEEDED, (job.error, log_of(job))
    clone = VirtualMachine.objects.get(pk=job.result["vm"])
    assert clone.name == f"{source.name}-clone"
    wait_for(lambda: boots_seen(1, clone.name) >= 1, 60, "the clone to boot (its own serial log)")
    assert boots_seen(1, source.name) == 0  # the source was never started, and its log is not shared
    source_disk = next(d for d in source.disks if d["device"] == "disk")
    clone_disk = next(d for d in clone.disks if d["device"] == "disk")
    assert clone_disk["source"] != source_disk["source"]
    assert storage.find_volume_in_pool(lab_host.uri, "default", f"{clone.name}.qcow2") == clone_disk["source"]
    assert clone.nics[0]["mac"] != source.nics[0]["mac"]
    # The ISO is shared, not copied.
    assert [d["source"] for d in clone.disks if d["device"] == "cdrom"] == [
        d["source"] for d in source.disks if d["device"] == "cdrom"
    ]
    assert job.bytes_total > 0 and job.percent == 100
    took = (job.finished_at - job.started_at).total_seconds()
    print(f"clone job: {took:.1f} s for {job.bytes_total} bytes of disk")


def test_a_running_vm_is_not_cloned_and_nothing_changes(lab, lab_host, make_guest, operator):
    from apps.core.errors import ServiceError
    from apps.vms import services

    source = services.run_lifecycle(make_guest("busy"), "start", actor=operator)
    before = {summary.name for summary in domain.list_domains(lab_host.uri, with_addresses=False)}
    with pytest.raises(ServiceError, match="shut the VM down or pause it first") as refused:
        provisioning.clone_vm(source, {}, actor=operator)
    assert refused.value.status == 409
    assert {summary.name for summary in domain.list_domains(lab_host.uri, with_addresses=False)} == before
    assert storage.find_volume_in_pool(lab_host.uri, "default", f"{source.name}-clone.qcow2") is None
    assert not Job.objects.exists()
