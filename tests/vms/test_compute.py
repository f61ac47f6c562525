"""vCPU and memory services on libvirt's test:/// driver: changes that land where asked, refusals that
come before the hypervisor is asked and change nothing, quotas, the gate, the audit.

The world's domains have `<vcpu current='1'>2</vcpu>`, 384 MiB of 512 MiB; vm0000 runs, vm0002
(`world.vm`) is shut off. The guest's own view of a hot-plug is proven on the lab
(tests/vms/test_compute_lab.py).
"""

import pytest

from apps.accounts.models import Project, Quota
from apps.accounts.quotas import current_usage
from apps.audit.models import AuditEvent
from apps.core.errors import AccessDenied, ServiceError
from apps.hosts.services import refresh_host
from apps.vms import compute as compute_services
from kvmpanel.virt import compute


def sizing(vm, *, live: bool):
    state = compute.read_compute(vm.host.uri, vm.uuid)
    return state.live if live else state.config


def test_it_adds_a_vcpu_to_the_running_vm_only_when_asked_live(world):
    vm = world.running_vm
    change = compute_services.set_vcpus(vm, 2, actor=world.root, live=True, config=False)
    assert change.command == f"virsh setvcpus {vm.name} 2 --live"
    assert sizing(vm, live=True).vcpus_current == 2
    assert sizing(vm, live=False).vcpus_current == 1
    assert change.vm.vcpus_current == 2  # the inventory row follows
    event = AuditEvent.objects.get(verb="vm.vcpus")
    assert event.result == "ok" and event.detail["command"] == change.command


def test_it_changes_both_definitions_by_default_while_running(world):
    vm = world.running_vm
    compute_services.set_memory(vm, 256, actor=world.root)
    assert sizing(vm, live=True).memory_current_kib == 256 * 1024
    assert sizing(vm, live=False).memory_current_kib == 256 * 1024


def test_it_changes_the_configuration_only_when_asked(world):
    vm = world.running_vm
    change = compute_services.set_vcpus(vm, 2, actor=world.root, live=False, config=True)
    assert change.command.endswith("--config")
    assert (sizing(vm, live=True).vcpus_current, sizing(vm, live=False).vcpus_current) == (1, 2)


def test_it_refuses_vcpus_beyond_the_maximum_naming_it(world):
    with pytest.raises(ServiceError) as refused:
        compute_services.set_vcpus(world.running_vm, 3, actor=world.root)
    assert refused.value.code == "beyond-maximum" and refused.value.status == 400
    assert "maximum of 2" in refused.value.message
    assert sizing(world.running_vm, live=True).vcpus_current == 1
    assert AuditEvent.objects.get(verb="vm.vcpus").result == "refused"


def test_it_refuses_memory_beyond_the_maximum_naming_it(world):
    with pytest.raises(ServiceError) as refused:
        compute_services.set_memory(world.running_vm, 513, actor=world.root, live=True, config=False)
    assert refused.value.code == "beyond-maximum"
    assert "512 MiB" in refused.value.message
    assert sizing(world.running_vm, live=True).memory_current_kib == 384 * 1024


@pytest.mark.parametrize("value", [0, -1, True, "2", 2.0, None, 10**9])
def test_it_refuses_a_vcpu_count_that_is_not_a_sane_whole_number(world, value):
    with pytest.raises(ServiceError) as refused:
        compute_services.set_vcpus(world.running_vm, value, actor=world.root)
    assert refused.value.status == 400 and refused.value.code == "invalid-vcpus"


@pytest.mark.parametrize("value", [0, 63, "256", 1.5, False, 10**12])
def test_it_refuses_a_memory_size_that_is_not_sane(world, value):
    with pytest.raises(ServiceError) as refused:
        compute_services.set_memory(world.running_vm, value, actor=world.root)
    assert refused.value.status == 400 and refused.value.code == "invalid-size"
    if isinstance(value, int) and not isinstance(value, bool):
        assert "between 64 and" in refused.value.message


def test_it_refuses_a_live_change_on_a_shut_off_vm(world):
    with pytest.raises(ServiceError) as refused:
        compute_services.set_vcpus(world.vm, 2, actor=world.root, live=True)
    assert refused.value.status == 409 and refused.value.code == "invalid-state"


def test_it_refuses_to_change_nothing(world):
    with pytest.raises(ServiceError):
        compute_services.set_memory(world.running_vm, 256, actor=world.root, live=False, config=False)


def test_it_changes_a_shut_off_vms_configuration(world):
    change = compute_services.set_memory(world.vm, 500, actor=world.root)
    assert change.command == f"virsh setmem {world.vm.name} 500M --config"
    assert change.vm.memory_current_kib == 500 * 1024


def test_it_raises_the_maximum_vcpus_of_a_shut_off_vm(world):
    change = compute_services.set_max_vcpus(world.vm, 4, actor=world.root)
    assert change.command == f"virsh setvcpus {world.vm.name} 4 --maximum --config"
    assert sizing(world.vm, live=False).vcpus_max == 4
    assert change.vm.vcpus_max == 4  # what the quotas count
    compute_services.set_vcpus(world.vm, 4, actor=world.root)
    assert sizing(world.vm, live=False).vcpus_current == 4


def test_lowering_the_maximum_vcpus_lowers_the_count_with_it(world):
    compute_services.set_max_vcpus(world.vm, 4, actor=world.root)
    compute_services.set_vcpus(world.vm, 3, actor=world.root)
    compute_services.set_max_vcpus(world.vm, 2, actor=world.root)
    assert (sizing(world.vm, live=False).vcpus_current, sizing(world.vm, live=False).vcpus_max) == (2, 2)


def test_it_raises_and_lowers_the_maximum_memory_of_a_shut_off_vm(world):
    change = compute_services.set_max_memory(world.vm, 1024, actor=world.root)
    assert change.command == f"virsh setmaxmem {world.vm.name} 1024M --config"
    assert change.vm.memory_max_kib == 1024 * 1024
    compute_services.set_max_memory(world.vm, 256, actor=world.root)
    config = sizing(world.vm, live=False)
    assert (config.memory_current_kib, config.memory_max_kib) == (256 * 1024, 256 * 1024)


def test_it_changes_maximums_only_while_shut_off(world):
    for change, value in ((compute_services.set_max_vcpus, 2), (compute_services.set_max_memory, 1024)):
        with pytest.raises(ServiceError) as refused:
            change(world.running_vm, value, actor=world.root)
        assert refused.value.status == 409 and refused.value.code == "only-shut-off"
        assert "shut off" in refused.value.message
    assert sizing(world.running_vm, live=False).memory_max_kib == 512 * 1024


def probed(world) -> None:
    """The host's inventory facts as add_host records them (the test driver's node: 8 CPUs, 64 GiB)."""
    refresh_host(world.host, actor=world.root)
    world.vm.host.refresh_from_db()


def test_it_refuses_more_vcpus_than_the_host_has(world):
    probed(world)
    with pytest.raises(ServiceError) as refused:
        compute_services.set_max_vcpus(world.vm, 9, actor=world.root)
    assert refused.value.code == "beyond-host"
    assert "8 CPUs" in refused.value.message


def test_it_refuses_more_memory_than_the_host_has(world):
    probed(world)
    with pytest.raises(ServiceError) as refused:
        compute_services.set_max_memory(world.vm, 64 * 1024 + 1, actor=world.root)
    assert refused.value.code == "beyond-host"


def test_the_virt_layer_refuses_beyond_the_maximum_and_running_maximum_changes_itself(world):
    from kvmpanel.virt.errors import HypervisorError

    uri, running = world.host.uri, world.running_vm.uuid
    with pytest.raises(HypervisorError) as beyond:
        compute.set_vcpus(uri, running, 3, live=True, config=False)
    assert beyond.value.code == "beyond-maximum"
    with pytest.raises(HypervisorError) as running_max:
        compute.set_max_memory(uri, running, 1 << 20)
    assert running_max.value.code == "only-shut-off"
    with pytest.raises(HypervisorError) as not_running:
        compute.set_memory(uri, world.vm.uuid, 1 << 18, live=True, config=False)
    assert not_running.value.code == "invalid-state"


# ---- quotas: maximums are what they count ----


def test_raising_the_maximum_vcpus_is_refused_over_the_owners_quota(world):
    vm = world.vm
    vm.owner = world.alice
    vm.save(update_fields=["owner"])
    Quota.objects.create(user=world.alice, max_vcpus=3)
    with pytest.raises(ServiceError) as refused:
        compute_services.set_max_vcpus(vm, 4, actor=world.alice)
    assert refused.value.status == 409 and refused.value.code == "quota"
    assert "user alice" in refused.value.message and "vCPUs 2 of 3 used" in refused.value.message
    assert sizing(vm, live=False).vcpus_max == 2
    assert AuditEvent.objects.get(verb="vm.vcpus.maximum").result == "refused"
    compute_services.set_max_vcpus(vm, 3, actor=world.alice)  # what fits is accepted
    assert current_usage(user=world.alice).vcpus == 3  # the quota usage sees the new maximum at once


def test_raising_the_maximum_memory_is_refused_over_the_projects_quota(world):
    vm = world.vm
    vm.project = Project.objects.create(name="compute")
    vm.save(update_fields=["project"])
    Quota.objects.create(project=vm.project, max_memory_mib=768)
    with pytest.raises(ServiceError) as refused:
        compute_services.set_max_memory(vm, 1024, actor=world.root)
    assert refused.value.code == "quota"
    assert "project compute" in refused.value.message and "memory (MiB) 512 of 768" in refused.value.message
    assert sizing(vm, live=False).memory_max_kib == 512 * 1024


def test_changes_under_the_maximum_do_not_touch_the_quota(world):
    vm = world.running_vm
    vm.owner = world.alice
    vm.save(update_fields=["owner"])
    Quota.objects.create(user=world.alice, max_vcpus=0, max_memory_mib=0)
    compute_services.set_vcpus(vm, 2, actor=world.root)
    compute_services.set_memory(vm, 512, actor=world.root)


# ---- the gate ----


def test_it_refuses_actors_without_the_privilege(world):
    with pytest.raises(AccessDenied):
        compute_services.set_vcpus(world.vm, 2, actor=world.carol)
    with pytest.raises(AccessDenied):
        compute_services.set_max_memory(world.vm, 1024, actor=world.bob)
    assert not AuditEvent.objects.filter(verb__startswith="vm.vcpus").exists()


def test_the_owner_may_change_their_vm(world):
    compute_services.set_vcpus(world.vm, 2, actor=world.alice)
    compute_services.set_memory(world.vm, 128, actor=world.alice)


# ---- memory statistics ----


def test_it_reads_memory_statistics_of_a_running_vm_only(world):
    stats = compute_services.read_memory_stats(world.running_vm, actor=world.carol)
    assert stats is not None
    assert compute_services.read_memory_stats(world.vm, actor=world.alice) is None
    with pytest.raises(AccessDenied):
        compute_services.read_memory_stats(world.vm, actor=world.bob)
