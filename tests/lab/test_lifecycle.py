"""The tiny guest through every lifecycle action, on a real libvirtd running QEMU (TCG)."""

import pytest

from apps.audit.models import AuditEvent
from apps.core.errors import ServiceError
from apps.hosts.inventory import sync_domain
from apps.vms import services
from kvmpanel.virt import domain, storage
from tests.support.lab import boots_seen, wait_for

pytestmark = pytest.mark.lab


def test_the_tiny_guest_goes_through_every_lifecycle_action(make_guest, operator):
    vm = make_guest("life")
    host, uri = vm.host, vm.host.uri
    assert vm.state == "shutoff" and vm.console == "vnc (not listening)"

    vm = services.run_lifecycle(vm, "start", actor=operator)
    assert vm.state == "running"
    assert vm.console.startswith("vnc unix:/")  # VNC on a unix socket, no TCP port
    wait_for(lambda: boots_seen(1, vm.name) >= 1, 30, "the guest to boot")

    vm = services.run_lifecycle(vm, "suspend", actor=operator)
    assert (vm.state, vm.state_reason) == ("paused", "user")
    vm = services.run_lifecycle(vm, "resume", actor=operator)
    assert vm.state == "running"

    vm = services.run_lifecycle(vm, "reboot", actor=operator)
    wait_for(lambda: boots_seen(1, vm.name) >= 2, 40, "the guest to boot again after reboot")

    # The guest's addresses come from the isolated network's DHCP leases.
    vm = wait_for(lambda: (v := sync_domain(host, vm.uuid)).addresses and v, 30, "a DHCP lease")
    assert vm.addresses[0]["address"].startswith("192.168.250.")

    vm = services.run_lifecycle(vm, "shutdown", actor=operator)  # ACPI: the guest powers itself off
    wait_for(lambda: sync_domain(host, vm.uuid).state == "shutoff", 30, "an ACPI shutdown")
    vm.refresh_from_db()
    assert vm.state_reason == "shutdown"

    vm = services.run_lifecycle(vm, "start", actor=operator)
    vm = services.run_lifecycle(vm, "force-off", actor=operator)
    assert (vm.state, vm.state_reason) == ("shutoff", "destroyed")

    old_name = vm.name
    vm = services.rename_vm(vm, f"{old_name}-r", actor=operator)
    assert domain.get_domain(uri, vm.uuid).name == f"{old_name}-r"

    disk = next(d["source"] for d in vm.disks if d["device"] == "disk")
    removed = services.delete_vm(vm, actor=operator, remove_disks=True)
    assert removed == [disk]
    assert not domain.domain_exists(uri, uuid=vm.uuid)
    assert storage.find_volume_in_pool(uri, "default", disk.rsplit("/", 1)[1]) is None
    verbs = list(AuditEvent.objects.filter(target_id=str(vm.pk), result="ok").values_list("verb", flat=True))
    assert {
        "vm.define",
        "vm.start",
        "vm.suspend",
        "vm.resume",
        "vm.reboot",
        "vm.shutdown",
        "vm.force-off",
        "vm.rename",
        "vm.delete",
    } <= set(verbs)


def test_a_running_guest_cannot_be_renamed_deleted_or_started_again(make_guest, operator):
    vm = services.run_lifecycle(make_guest("refuse"), "start", actor=operator)
    for attempt, message in [
        (lambda: services.run_lifecycle(vm, "start", actor=operator), "already running"),
        (lambda: services.rename_vm(vm, "t-other", actor=operator), "Shut the VM off"),
        (lambda: services.delete_vm(vm, actor=operator, remove_disks=True), "Shut the VM off"),
    ]:
        with pytest.raises(ServiceError, match=message):
            attempt()
    assert domain.get_domain(vm.host.uri, vm.uuid).state == "running"


def test_libvirt_schema_validation_refuses_undefined_elements(lab_host, operator):
    xml = """<domain type='qemu'><name>t-invalid</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>
      <os><type arch='x86_64'>hvm</type></os><devices><frobnicator/></devices></domain>"""
    with pytest.raises(ServiceError) as refused:
        services.define_vm(lab_host, xml, actor=operator)
    assert refused.value.status == 400
    assert "frobnicator" in refused.value.message or "schema" in refused.value.message.lower()
    assert not domain.domain_exists(lab_host.uri, name="t-invalid")


def test_the_host_probe_reads_real_capabilities(lab_host):
    assert lab_host.hostname == "labhost1"
    assert lab_host.cpu_count >= 1 and lab_host.memory_mib > 0
    assert lab_host.hypervisor == "QEMU" and lab_host.hypervisor_version.startswith("7.")
    assert {p["name"] for p in lab_host.pools} >= {"default", "iso"}
    networks = {n["name"]: n for n in lab_host.networks}
    assert networks["lab-iso"]["forward_mode"] == ""  # isolated: no <forward>
