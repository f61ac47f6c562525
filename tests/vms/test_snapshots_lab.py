"""Snapshots on a real libvirtd + QEMU (TCG) with the tiny guest, jobs in a real Celery worker.

Reverting must bring the guest's disk back: a marker written before the snapshot is there again
after the revert, although another one overwrote it in between; the running guest keeps running.
"""

import time

import pytest

from apps.vms import services as vm_services
from apps.vms import snapshots as snapshot_services
from kvmpanel.virt import domain
from tests.support.guest_shell import read_marker, run_in_guest, write_marker
from tests.vms.test_disks_lab import boot, finish

pytestmark = [pytest.mark.lab, pytest.mark.django_db(transaction=True)]


def test_revert_restores_the_disk_and_the_running_guest(make_guest, operator, worker):
    vm = boot(make_guest("snap"), operator)
    marker_a = write_marker(vm)
    run_in_guest(vm, "echo before > /tmp/ram-note")  # lives only in the guest's RAM

    started = time.monotonic()
    job = finish(snapshot_services.create_snapshot(vm, actor=operator, name="before", description="marker A"))
    print(f"snapshot job (running VM, with RAM) took {time.monotonic() - started:.2f} s")
    assert job.result["memory"] and job.result["snapshot_state"] == "running"

    marker_b = write_marker(vm)
    run_in_guest(vm, "echo after > /tmp/ram-note")
    assert read_marker(vm) == marker_b != marker_a

    started = time.monotonic()
    job = finish(snapshot_services.revert_snapshot(vm, "before", actor=operator))
    print(f"revert job took {time.monotonic() - started:.2f} s")
    assert job.result["state"] == "running" == domain.get_domain(vm.host.uri, vm.uuid).state
    assert read_marker(vm) == marker_a
    assert run_in_guest(vm, "cat /tmp/ram-note") == "before"  # the RAM came back too

    finish(snapshot_services.create_snapshot(vm, actor=operator, name="after-revert"))
    tree = snapshot_services.list_snapshots(vm, actor=operator)
    assert [(s.name, s.parent, s.current) for s in tree] == [("before", "", False), ("after-revert", "before", True)]

    finish(snapshot_services.delete_snapshot(vm, "before", actor=operator))
    assert [(s.name, s.parent) for s in snapshot_services.list_snapshots(vm, actor=operator)] == [("after-revert", "")]
    finish(snapshot_services.delete_snapshot(vm, "after-revert", actor=operator))
    assert snapshot_services.list_snapshots(vm, actor=operator) == ()


def test_a_shut_off_vm_is_snapshotted_without_memory_and_reverts_shut_off(make_guest, operator, worker):
    vm = boot(make_guest("cold-snap"), operator)
    marker = write_marker(vm)
    vm = vm_services.run_lifecycle(vm, "force-off", actor=operator)
    job = finish(snapshot_services.create_snapshot(vm, actor=operator, name="cold"))
    assert not job.result["memory"] and job.result["snapshot_state"] == "shutoff"
    vm = boot(vm, operator)
    write_marker(vm)
    job = finish(snapshot_services.revert_snapshot(vm, "cold", actor=operator))
    assert job.result["state"] == "shutoff"  # it was taken shut off: the VM is shut off again
    vm = boot(vm, operator)
    assert read_marker(vm) == marker
