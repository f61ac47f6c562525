"""VM lifecycle services on libvirt's test:/// driver: state changes, refusals, audit."""

import pytest

from apps.audit.models import AuditEvent
from apps.core.errors import AccessDenied, ServiceError
from apps.vms import services
from kvmpanel.virt import domain


def state_on_host(vm) -> str:
    return domain.get_domain(vm.host.uri, vm.uuid).state


def test_it_starts_a_shut_off_vm_and_records_who_did_it(world):
    vm = services.run_lifecycle(world.vm, "start", actor=world.alice, client_address="127.0.0.1")
    assert vm.state == "running" == state_on_host(vm)
    event = AuditEvent.objects.get(verb="vm.start")
    assert (event.actor, event.target_id, event.result, event.client_address) == (
        world.alice,
        str(vm.pk),
        "ok",
        "127.0.0.1",
    )


def test_it_walks_a_vm_through_every_power_action(world):
    vm = world.running_vm
    for action, expected in [
        ("suspend", "paused"),
        ("resume", "running"),
        ("reboot", "running"),
        ("force-off", "shutoff"),
        ("start", "running"),
        ("shutdown", "shutoff"),
    ]:
        vm = services.run_lifecycle(vm, action, actor=world.oscar)
        assert vm.state == expected == state_on_host(vm), action


def test_it_refuses_to_start_a_running_vm_with_a_clear_message(world):
    with pytest.raises(ServiceError) as refused:
        services.run_lifecycle(world.running_vm, "start", actor=world.oscar)
    assert refused.value.status == 409
    assert "already running" in refused.value.message
    assert AuditEvent.objects.filter(verb="vm.start", result="refused").exists()


@pytest.mark.parametrize("action", ["shutdown", "reboot", "suspend", "force-off"])
def test_it_refuses_actions_that_need_a_running_vm(world, action):
    with pytest.raises(ServiceError) as refused:
        services.run_lifecycle(world.vm, action, actor=world.oscar)
    assert refused.value.status == 409


def test_it_refuses_to_resume_a_vm_that_is_not_paused(world):
    with pytest.raises(ServiceError, match="suspended"):
        services.run_lifecycle(world.running_vm, "resume", actor=world.oscar)


def test_the_service_rechecks_permission_even_if_a_view_forgot(world):
    with pytest.raises(AccessDenied):
        services.run_lifecycle(world.vm, "start", actor=world.carol)
    assert state_on_host(world.vm) == "shutoff"


def test_it_notices_a_state_changed_outside_the_panel_before_refusing(world):
    domain.start(world.vm.host.uri, world.vm.uuid)  # out of band: the inventory still says shut off
    with pytest.raises(ServiceError, match="already running"):
        services.run_lifecycle(world.vm, "start", actor=world.alice)
    world.vm.refresh_from_db()
    assert world.vm.state == "running"


def test_it_renames_a_shut_off_vm(world):
    vm = services.rename_vm(world.vm, "renamed-1", actor=world.alice)
    assert vm.name == "renamed-1" == domain.get_domain(vm.host.uri, vm.uuid).name
    assert AuditEvent.objects.get(verb="vm.rename").detail == {"from": "vm0002", "to": "renamed-1"}


def test_it_refuses_to_rename_a_running_vm(world):
    with pytest.raises(ServiceError, match="Shut the VM off"):
        services.rename_vm(world.running_vm, "other", actor=world.oscar)


@pytest.mark.parametrize("name", ["", "-leading-dash", "has space", "a/b", "x" * 64, "ünï"])
def test_it_refuses_invalid_names(world, name):
    with pytest.raises(ServiceError):
        services.rename_vm(world.vm, name, actor=world.alice)
    assert domain.get_domain(world.vm.host.uri, world.vm.uuid).name == "vm0002"


def test_it_refuses_a_name_another_vm_on_the_host_has(world):
    with pytest.raises(ServiceError, match="already named"):
        services.rename_vm(world.vm, "vm0003", actor=world.root)


def test_it_turns_autostart_on_and_off(world):
    vm = services.set_autostart(world.vm, True, actor=world.alice)
    assert vm.autostart is True
    vm = services.set_autostart(vm, False, actor=world.alice)
    assert vm.autostart is False


def test_it_deletes_a_shut_off_vm_and_its_disk_volumes(world):
    uuid, uri = world.vm.uuid, world.vm.host.uri
    removed = services.delete_vm(world.vm, actor=world.alice, remove_disks=True)
    assert removed == ["/pool/vm0002.qcow2"]
    assert not domain.domain_exists(uri, uuid=uuid)
    assert not type(world.vm).objects.filter(uuid=uuid).exists()
    assert AuditEvent.objects.get(verb="vm.delete").detail["removed"] == removed


def test_it_keeps_the_disks_when_asked(world):
    assert services.delete_vm(world.vm, actor=world.alice, remove_disks=False) == []


def test_it_refuses_to_delete_a_running_vm(world):
    with pytest.raises(ServiceError, match="Shut the VM off"):
        services.delete_vm(world.running_vm, actor=world.oscar, remove_disks=True)
    assert domain.domain_exists(world.running_vm.host.uri, uuid=world.running_vm.uuid)


def test_a_host_that_went_away_gives_a_clear_unreachable_message(world, tmp_path):
    world.host.uri = f"qemu+unix:///system?socket={tmp_path}/nothing-here"
    world.host.save()
    world.vm.refresh_from_db()
    with pytest.raises(ServiceError) as failed:
        services.run_lifecycle(world.vm, "start", actor=world.alice)
    assert failed.value.status == 503
    assert "testhost is unreachable" in failed.value.message
