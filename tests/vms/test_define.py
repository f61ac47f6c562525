"""Define a VM from uploaded XML: the panel's own checks, then libvirt's."""

import pytest

from apps.accounts.permissions import has_privilege
from apps.core.errors import AccessDenied, ServiceError
from apps.vms import services
from apps.vms.models import VirtualMachine
from kvmpanel.virt import domain


def xml(name="uploaded", disk="/pool/vm0001.qcow2", extra="", devices_extra="") -> str:
    return f"""<domain type='test'>
  <name>{name}</name><memory unit='MiB'>128</memory><vcpu>1</vcpu>
  <os><type arch='x86_64'>hvm</type></os>{extra}
  <devices><disk type='file' device='disk'><source file='{disk}'/><target dev='vda' bus='virtio'/></disk>
  {devices_extra}</devices>
</domain>"""


def test_it_defines_a_vm_and_makes_the_uploader_its_owner(world):
    vm = services.define_vm(world.host, xml(), actor=world.oscar)
    assert domain.domain_exists(world.host.uri, name="uploaded")
    assert vm.owner == world.oscar and vm.state == "shutoff"
    assert has_privilege(world.oscar, vm, "vm.delete", fresh=True)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("<domain><name>x</name>", "not well-formed"),
        ("<network><name>x</name></network>", "root element"),
        (xml(disk="/etc/shadow"), "inside a storage pool"),
        (xml(disk="/pool/../etc/shadow"), "inside a storage pool"),
        (xml(name="bad name"), "VM name"),
        (xml(name="vm0001"), "already exists"),
        (
            xml(
                extra="<qemu:commandline xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>"
                "<qemu:arg value='-evil'/></qemu:commandline>"
            ),
            "Namespaced",
        ),
        (xml(devices_extra="<hostdev mode='subsystem' type='pci'/>"), "hostdev"),
        (xml(devices_extra="<interface type='ethernet'><script path='/bin/sh'/></interface>"), "scripts"),
        (
            xml(devices_extra="<disk type='block' device='disk'><source dev='/dev/sda'/><target dev='vdb'/></disk>"),
            "type 'block'",
        ),
        ('<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><domain><name>&e;</name></domain>', "DOCTYPE"),
    ],
)
def test_it_refuses_bad_xml_with_a_message_and_defines_nothing(world, document, message):
    before = VirtualMachine.objects.count()
    with pytest.raises(ServiceError) as refused:
        services.define_vm(world.host, document, actor=world.root)
    assert message in refused.value.message
    assert refused.value.status in {400, 409}
    assert VirtualMachine.objects.count() == before


def test_it_needs_vm_create_on_the_host(world):
    with pytest.raises(AccessDenied):
        services.define_vm(world.host, xml(), actor=world.carol)
