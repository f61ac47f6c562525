"""vCPUs and memory on a real libvirtd + QEMU (TCG) with the tiny guest (1 of 2 vCPUs, 192 of 256 MiB).

The guest is the witness: it sees a hot-plugged vCPU come online (its watch loop onlines new CPUs)
and its memory shrink under the balloon; dommemstat reports the balloon; the persistent definition
shows a config-only change, and a restart keeps what was persistent and drops what was live only.
"""

import re

import pytest

from apps.core.errors import ServiceError
from apps.vms import compute as compute_services
from apps.vms import services as vm_services
from kvmpanel.virt import compute
from tests.support.guest_shell import run_in_guest
from tests.support.lab import boots_seen, wait_for

pytestmark = [pytest.mark.lab, pytest.mark.django_db(transaction=True)]

HOST = 1  # the shared lab_host fixture


def boot(vm, operator):
    seen = boots_seen(HOST, vm.name)
    vm = vm_services.run_lifecycle(vm, "start", actor=operator)
    wait_for(lambda: boots_seen(HOST, vm.name) > seen, 90, "the guest to boot")
    return vm


def online_cpus(vm) -> str:
    return run_in_guest(vm, "cat /sys/devices/system/cpu/online").strip().splitlines()[-1]


def guest_mem_total_kib(vm) -> int:
    found = re.search(r"MemTotal:\s+(\d+) kB", run_in_guest(vm, "grep MemTotal /proc/meminfo"))
    assert found, "no MemTotal in the guest"
    return int(found.group(1))


def state(vm) -> compute.Compute:
    return compute.read_compute(vm.host.uri, vm.uuid)


def test_a_vcpu_hot_plugged_live_comes_online_in_the_guest(make_guest, operator):
    vm = boot(make_guest("cpu"), operator)
    assert online_cpus(vm) == "0"
    change = compute_services.set_vcpus(vm, 2, actor=operator, live=True, config=False)
    assert change.command == f"virsh setvcpus {vm.name} 2 --live"
    assert change.vm.vcpus_current == 2  # the inventory row follows at once
    wait_for(lambda: online_cpus(vm) == "0-1", 30, "the guest to online its second vCPU", interval=1)
    assert run_in_guest(vm, "nproc").strip().splitlines()[-1] == "2"
    assert state(vm).config.vcpus_current == 1  # live only: the persistent definition kept 1

    with pytest.raises(ServiceError) as beyond:
        compute_services.set_vcpus(vm, 3, actor=operator, live=True)
    assert beyond.value.code == "beyond-maximum" and "maximum of 2" in beyond.value.message
    with pytest.raises(ServiceError) as running:
        compute_services.set_max_vcpus(vm, 2, actor=operator)
    assert running.value.code == "only-shut-off"
    with pytest.raises(ServiceError) as beyond_host:
        compute_services.set_max_vcpus(vm_services.run_lifecycle(vm, "force-off", actor=operator), 3, actor=operator)
    assert beyond_host.value.code == "beyond-host" and "2 CPUs" in beyond_host.value.message


def test_memory_ballooned_live_shows_in_dommemstat_and_the_guest(make_guest, operator):
    vm = boot(make_guest("mem"), operator)
    before = guest_mem_total_kib(vm)
    change = compute_services.set_memory(vm, 160, actor=operator, live=True, config=False)
    assert change.command == f"virsh setmem {vm.name} 160M --live"
    wait_for(lambda: state(vm).live.memory_current_kib == 160 * 1024, 30, "the balloon to reach 160 MiB")
    stats = wait_for(
        lambda: (s := compute_services.read_memory_stats(vm, actor=operator)) and s.actual_kib == 160 * 1024 and s,
        30,
        "dommemstat to report the balloon",
    )
    assert stats.rss_kib > 0
    wait_for(lambda: guest_mem_total_kib(vm) <= before - 24 * 1024, 30, "the guest to give memory back", interval=1)
    assert state(vm).config.memory_current_kib == 192 * 1024  # live only

    compute_services.set_memory(vm, 256, actor=operator, live=True, config=False)
    wait_for(lambda: state(vm).live.memory_current_kib == 256 * 1024, 30, "the balloon to grow to the maximum")
    with pytest.raises(ServiceError) as beyond:
        compute_services.set_memory(vm, 257, actor=operator, live=True)
    assert beyond.value.code == "beyond-maximum"


def test_config_changes_survive_a_restart_and_live_ones_do_not(make_guest, operator):
    vm = boot(make_guest("persist"), operator)
    compute_services.set_vcpus(vm, 2, actor=operator, live=False, config=True)
    compute_services.set_memory(vm, 224, actor=operator, live=False, config=True)
    compute_services.set_memory(vm, 160, actor=operator, live=True, config=False)
    now = state(vm)
    assert (now.config.vcpus_current, now.config.memory_current_kib) == (2, 224 * 1024)
    assert now.live.vcpus_current == 1  # the running VM did not change
    xml_text = vm_services.export_xml(vm, actor=operator)
    assert compute.parse_sizing(xml_text).vcpus_current == 2  # `virsh dumpxml --inactive`: <vcpu>2</vcpu>

    vm = vm_services.run_lifecycle(vm, "force-off", actor=operator)
    vm = boot(vm, operator)
    assert state(vm).live.vcpus_current == 2
    # QEMU starts with the maximum and the guest's balloon driver inflates to the target once it loads.
    wait_for(lambda: state(vm).live.memory_current_kib == 224 * 1024, 30, "the balloon at 224 MiB (160 was live only)")
    wait_for(lambda: online_cpus(vm) == "0-1", 30, "the guest to run on both vCPUs", interval=1)


def test_raised_maximums_while_shut_off_are_usable_after_boot(make_guest, operator):
    vm = make_guest("max")
    change = compute_services.set_max_memory(vm, 320, actor=operator)
    assert change.command == f"virsh setmaxmem {vm.name} 320M --config"
    assert change.vm.memory_max_kib == 320 * 1024  # what the quotas count
    vm = boot(change.vm, operator)
    compute_services.set_memory(vm, 320, actor=operator, live=True, config=False)
    wait_for(lambda: state(vm).live.memory_current_kib == 320 * 1024, 30, "the balloon to reach the new maximum")


def test_unplugging_a_vcpu_either_works_or_says_the_guest_did_not_let_go(make_guest, operator):
    vm = boot(make_guest("unplug"), operator)
    compute_services.set_vcpus(vm, 2, actor=operator, live=True, config=False)
    wait_for(lambda: online_cpus(vm) == "0-1", 30, "the guest to online its second vCPU", interval=1)
    try:
        compute_services.set_vcpus(vm, 1, actor=operator, live=True, config=False)
    except ServiceError as refused:
        assert refused.code == "cannot-unplug", refused.message
        assert "did not release" in refused.message
    else:
        wait_for(lambda: online_cpus(vm) == "0", 30, "the guest to lose its second vCPU", interval=1)
        assert state(vm).live.vcpus_current == 1
