"""Create and clone on test:/// hosts: the XML they define, every refusal before a job exists, and
both jobs run in-process by the runner (success, and the cleanup after a failure)."""

import xml.etree.ElementTree as ET
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.accounts.models import Role
from apps.accounts.services import grant_role
from apps.core.errors import AccessDenied, ServiceError
from apps.jobs import runner
from apps.jobs.choices import JobStatus
from apps.jobs.models import Job
from apps.storage.models import StorageVolume
from apps.storage.sync import sync_pools
from apps.vms import provisioning
from apps.vms import services as vm_services
from apps.vms.models import VirtualMachine
from kvmpanel.virt import clone as virt_clone
from kvmpanel.virt import domain, storage
from kvmpanel.virt import xml as domain_xml
from kvmpanel.virt.errors import HypervisorError

MIB = 1 << 20


@pytest.fixture
def world(world):
    """The test host with its storage inventory synced, as adding a host does (new disks' paths
    come from the storage app's rows)."""
    sync_pools(world.host)
    return world


def params(**changes) -> dict:
    base = {
        "name": "web1",
        "os_variant": "debian12",
        "vcpus": 2,
        "max_vcpus": 8,
        "memory_mib": 2048,
        "max_memory_mib": 4096,
        "disk_pool": "default",
        "disk_size_bytes": 64 * MIB,
        "network": "isolated",
    }
    return {**base, **changes}


def in_pool(host, name: str) -> bool:
    return storage.find_volume_in_pool(host.uri, "default", name) is not None


def parse(xml_text: str) -> ET.Element:
    return ET.fromstring(xml_text)  # noqa: S314 - our own XML


# ---- the domain XML ----


def test_a_q35_vm_is_hot_plug_ready_with_spare_root_ports():
    spec = domain_xml.DomainSpec(
        name="web1",
        machine="q35",
        vcpus=2,
        max_vcpus=8,
        memory_mib=2048,
        max_memory_mib=4096,
        disk_path="/pool/web1.qcow2",
        cdrom_path="/iso/installer.iso",
        network="isolated",
        spare_root_ports=4,
        tablet=True,
    )
    root = parse(domain_xml.build_domain_xml(spec))
    assert root.find("os/type").get("machine") == "q35"
    assert root.find("features/acpi") is not None
    vcpu = root.find("vcpu")
    assert (vcpu.text, vcpu.get("current")) == ("8", "2")
    assert (root.findtext("memory"), root.findtext("currentMemory")) == ("4096", "2048")
    disk, cdrom = root.findall("devices/disk")
    assert (disk.find("target").get("dev"), disk.find("target").get("bus"), disk.find("boot").get("order")) == (
        "vda",
        "virtio",
        "1",
    )
    assert (cdrom.find("target").get("dev"), cdrom.find("target").get("bus"), cdrom.find("boot").get("order")) == (
        "sda",
        "sata",
        "2",
    )
    assert cdrom.find("readonly") is not None
    ports = [c for c in root.iter("controller") if c.get("model") == "pcie-root-port"]
    # 3 for virtio-serial, balloon and USB, 1 disk, 1 NIC, 4 spare (measured: libvirt fills ports first).
    assert len(ports) == 9
    assert root.find("devices/graphics").get("type") == "vnc"
    assert root.find("devices/graphics/listen").get("type") == "socket"
    assert root.find("devices/input").get("type") == "tablet"


def test_an_old_pc_machine_gets_ide_and_no_root_ports():
    spec = domain_xml.DomainSpec(
        name="old",
        machine="pc",
        disk_bus="ide",
        nic_model="e1000",
        disk_path="/p/a.img",
        cdrom_path="/p/b.iso",
        network="n",
    )
    root = parse(domain_xml.build_domain_xml(spec))
    targets = [(d.find("target").get("dev"), d.find("target").get("bus")) for d in root.findall("devices/disk")]
    assert targets == [("hda", "ide"), ("hdc", "ide")]
    assert not [c for c in root.iter("controller") if c.get("model") == "pcie-root-port"]
    assert root.find("devices/interface/model").get("type") == "e1000"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"machine": "q35", "disk_bus": "ide"}, "no ide disk bus"),
        ({"machine": "isapc"}, "Unknown machine type"),
        ({"vcpus": 3, "max_vcpus": 2}, "vCPUs"),
        ({"memory_mib": 512, "max_memory_mib": 256}, "memory"),
        ({"nic_model": "ne2k"}, "NIC model"),
        ({"disk_path": "relative.qcow2"}, "absolute"),
        ({"name": "a/b"}, "VM name"),
    ],
)
def test_the_builder_refuses_what_libvirt_would_choke_on(changes, message):
    spec = domain_xml.DomainSpec(**{"name": "x", **changes})
    with pytest.raises(HypervisorError, match=message):
        domain_xml.build_domain_xml(spec)


def test_ejecting_empties_the_cdrom_and_restores_reboot():
    spec = domain_xml.DomainSpec(
        name="inst", machine="q35", disk_path="/p/d.qcow2", cdrom_path="/p/i.iso", on_reboot="destroy"
    )
    root = parse(domain_xml.eject_cdroms(domain_xml.build_domain_xml(spec)))
    cdrom = next(d for d in root.findall("devices/disk") if d.get("device") == "cdrom")
    assert cdrom.find("source") is None and cdrom.find("boot") is None
    assert root.findtext("on_reboot") == "restart"
    assert domain_xml.cdrom_sources(ET.tostring(root, encoding="unicode")) == []


# ---- the clone's XML ----

SOURCE_XML = """<domain type='qemu'>
  <name>web</name><uuid>0401512d-3886-4405-a27d-82a220e1ccae</uuid>
  <memory unit='KiB'>262144</memory><vcpu>1</vcpu><os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/>
      <source file='/pool/web.qcow2'/><target dev='vda' bus='virtio'/></disk>
    <disk type='file' device='disk'><driver name='qemu' type='raw'/>
      <source file='/pool/shared.img'/><target dev='vdb' bus='virtio'/><shareable/></disk>
    <disk type='file' device='cdrom'><source file='/iso/live.iso'/><target dev='hdc' bus='ide'/><readonly/></disk>
    <interface type='network'><mac address='52:54:00:c4:14:da'/><source network='lab-iso'/>
      <target dev='vnet3'/></interface>
    <serial type='pty'><log file='/var/log/libvirt/qemu/web-serial.log' append='on'/></serial>
    <console type='pty'><log file='/var/log/libvirt/qemu/web-serial.log' append='on'/></console>
    <channel type='unix'><source mode='bind' path='/var/lib/libvirt/qemu/channel/web.agent'/>
      <target type='virtio' name='org.qemu.guest_agent.0'/></channel>
    <graphics type='vnc' socket='/var/lib/libvirt/qemu/web.vnc'><listen type='socket'
      socket='/var/lib/libvirt/qemu/web.vnc'/></graphics>
    <graphics type='spice' port='5901' autoport='no'/>
  </devices>
</domain>"""


def test_a_clone_gets_a_new_identity_its_own_disk_copy_and_its_own_log():
    clone = parse(
        virt_clone.rewrite_for_clone(
            SOURCE_XML,
            name="web-clone",
            uuid="11111111-2222-3333-4444-555555555555",
            disk_paths={"vda": "/pool/web-clone.qcow2"},
        )
    )
    assert clone.findtext("name") == "web-clone"
    assert clone.findtext("uuid") == "11111111-2222-3333-4444-555555555555"
    assert clone.find("devices/emulator") is None
    sources = [d.find("source").get("file") for d in clone.findall("devices/disk")]
    assert sources == ["/pool/web-clone.qcow2", "/pool/shared.img", "/iso/live.iso"]  # shareable and CD shared
    mac = clone.find("devices/interface/mac").get("address")
    assert mac != "52:54:00:c4:14:da" and mac.startswith("52:54:00:")
    assert clone.find("devices/interface/target") is None
    logs = {element.get("file") for element in clone.iter("log")}
    assert logs == {"/var/log/libvirt/qemu/web-clone-serial.log"}
    assert clone.find("devices/channel/source").get("path") is None
    vnc, spice = clone.findall("devices/graphics")
    assert vnc.get("socket") is None and vnc.find("listen").get("socket") is None
    assert (spice.get("port"), spice.get("autoport")) == (None, "yes")


def test_a_log_without_the_old_name_becomes_a_new_file_next_to_it():
    source = SOURCE_XML.replace("web-serial.log", "console.log")
    clone = parse(virt_clone.rewrite_for_clone(source, name="other", disk_paths={}))
    assert {e.get("file") for e in clone.iter("log")} == {"/var/log/libvirt/qemu/other-serial.log"}
    assert clone.find("uuid") is None  # libvirt picks one


@pytest.mark.parametrize(
    ("source", "index", "expected"),
    [("web.qcow2", 0, "web-clone.qcow2"), ("web.qcow2", 1, "web-clone-1.qcow2"), ("data", 0, "web-clone")],
)
def test_copies_are_named_after_the_clone(source, index, expected):
    assert virt_clone.clone_volume_name(source, "web-clone", index) == expected


# ---- create: validation ----


def test_a_valid_request_is_cleaned_with_the_variants_hardware(world):
    cleaned = provisioning.validate_create(world.host, params())
    assert cleaned["machine"] == "q35" and cleaned["disk_bus"] == "virtio" and cleaned["nic_model"] == "virtio"
    assert (cleaned["vcpus"], cleaned["max_vcpus"], cleaned["memory_mib"], cleaned["max_memory_mib"]) == (
        2,
        8,
        2048,
        4096,
    )
    assert cleaned["disk_volume"] == "web1.qcow2" and cleaned["install"] is False
    commands = provisioning.create_commands(cleaned)
    assert commands[0] == "virsh vol-create-as default web1.qcow2 67108864b --format qcow2"
    assert "--vcpus 2,maxvcpus=8" in commands[1] and "--memory 4096,currentMemory=2048" in commands[1]
    assert "--os-variant debian12" in commands[1] and "--network network=isolated,model=virtio" in commands[1]


def test_windows_gets_sata_e1000e_and_local_time(world):
    cleaned = provisioning.validate_create(world.host, params(os_variant="win2k22"))
    assert (cleaned["disk_bus"], cleaned["nic_model"], cleaned["clock_offset"]) == ("sata", "e1000e", "localtime")


BAD_NAMES = ["a/b", "../etc", "a..b", "<x>", "x&y", "it's", "n" * 300, "名字", "café", "", "  ", "-lead", None, 7]


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_bad_names_are_refused_before_a_job_exists(world, name):
    with pytest.raises(provisioning.FieldError) as refused:
        provisioning.create_vm(world.host, params(name=name), actor=world.root)
    assert (refused.value.field, refused.value.status) == ("name", 400)
    assert not Job.objects.exists()


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"disk_size_bytes": 0}, "disk_size_bytes", "between"),
        ({"disk_size_bytes": -1}, "disk_size_bytes", "between"),
        ({"disk_size_bytes": 10**20}, "disk_size_bytes", "between"),
        ({"disk_size_bytes": "lots"}, "disk_size_bytes", "whole number"),
        ({"disk_size_bytes": True}, "disk_size_bytes", "whole number"),
        ({"disk_size_bytes": 101 << 30}, "disk_size_bytes", "free"),  # the pool has 100 GiB
        ({"memory_mib": 0}, "memory_mib", "between"),
        ({"memory_mib": -512}, "memory_mib", "between"),
        ({"memory_mib": 8192, "max_memory_mib": 4096}, "memory_mib", "between"),
        ({"max_memory_mib": 10**9}, "max_memory_mib", "between"),
        ({"vcpus": 0}, "vcpus", "between"),
        ({"vcpus": 9}, "vcpus", "between"),  # the host has 8 CPUs
        ({"vcpus": 4, "max_vcpus": 2}, "max_vcpus", "between"),
        ({"max_vcpus": 10_000}, "max_vcpus", "between"),
        ({"disk_pool": "nope"}, "disk_pool", "no active storage pool"),
        ({"network": "nope"}, "network", "no active network"),
        ({"iso_pool": "default", "iso_volume": "missing.iso"}, "iso_volume", "holds no volume"),
        ({"iso_pool": "default", "iso_volume": "../../etc/passwd"}, "iso_volume", "not a path"),
        ({"install": True}, "iso_volume", "needs an installer ISO"),
        ({"install": "yes"}, "install", "true or false"),
        ({"os_variant": "beos"}, "os_variant", "Unknown OS variant"),
        ({"disk_bus": "ide"}, "disk_bus", "must be one of"),  # no IDE on q35
        ({"disk_format": "vmdk"}, "disk_format", "must be one of"),
        ({"install_timeout_seconds": 1}, "install_timeout_seconds", "between"),
        ({"virt_type": "kvm"}, "virt_type", "no usable KVM"),  # the test host emulates
        ({"virt_type": "xen"}, "virt_type", "must be one of"),
    ],
)
def test_bad_input_gets_a_clear_error_naming_the_field_and_changes_nothing(world, changes, field, words):
    with pytest.raises(provisioning.FieldError) as refused:
        provisioning.create_vm(world.host, params(**changes), actor=world.root)
    assert refused.value.field == field and refused.value.status == 400
    assert words in refused.value.message
    assert not Job.objects.exists()
    assert not in_pool(world.host, "web1.qcow2")


def test_a_taken_name_or_volume_is_a_conflict(world):
    with pytest.raises(provisioning.FieldError) as refused:
        provisioning.create_vm(world.host, params(name="vm0001"), actor=world.root)
    assert refused.value.status == 409 and "already exists" in refused.value.message
    storage.create_volume(world.host.uri, "default", "web1.qcow2", capacity_bytes=MIB)
    with pytest.raises(provisioning.FieldError) as refused:
        provisioning.create_vm(world.host, params(), actor=world.root)
    assert refused.value.status == 409 and "already holds a volume named web1.qcow2" in refused.value.message


def test_a_second_create_with_the_same_name_waits_for_no_one(world):
    provisioning.create_vm(world.host, params(), actor=world.root)
    with pytest.raises(provisioning.FieldError) as refused:
        provisioning.create_vm(world.host, params(), actor=world.root)
    assert refused.value.status == 409


def test_creating_needs_vm_create_on_the_host(world):
    for user in (world.alice, world.carol, world.bob):
        with pytest.raises(AccessDenied):
            provisioning.create_vm(world.host, params(), actor=user)
    assert provisioning.create_vm(world.host, params(), actor=world.oscar).kind == "vm.create"


# ---- create: the job ----


def test_the_create_job_makes_the_disk_defines_and_starts_the_vm_for_its_owner(world):
    job = provisioning.create_vm(world.host, params(), actor=world.oscar)
    assert runner.run_job(job.pk) == JobStatus.SUCCEEDED, [line.line for line in job.log_lines.all()]
    job.refresh_from_db()
    vm = VirtualMachine.objects.get(pk=job.result["vm"])
    assert job.vm == vm and vm.owner == world.oscar and vm.name == "web1"
    assert vm.state == "running" and (vm.vcpus_current, vm.vcpus_max) == (2, 8)
    assert vm.disks[0]["source"] == "/pool/web1.qcow2" and in_pool(world.host, "web1.qcow2")
    assert StorageVolume.objects.filter(pool__host=world.host, name="web1.qcow2").exists()  # storage pages see it
    lines = [line.line for line in job.log_lines.all()]
    assert "$ virsh vol-create-as default web1.qcow2 67108864b --format qcow2" in lines
    assert "$ virsh start web1" in lines


def test_a_create_that_fails_leaves_no_volume_and_no_vm(world, monkeypatch):
    job = provisioning.create_vm(world.host, params(), actor=world.oscar)

    def refuse_start(vm, action, *, actor, client_address=None):
        raise HypervisorError("no room for QEMU", code="failed")

    monkeypatch.setattr(vm_services, "run_lifecycle", refuse_start)
    assert runner.run_job(job.pk) == JobStatus.FAILED
    job.refresh_from_db()
    assert job.error == "no room for QEMU"
    assert not in_pool(world.host, "web1.qcow2")
    assert not domain.domain_exists(world.host.uri, name="web1")
    assert not VirtualMachine.objects.filter(name="web1").exists()
    assert job.vm is None  # the row it pointed at is gone
    assert not StorageVolume.objects.filter(pool__host=world.host, name="web1.qcow2").exists()


def test_what_a_dead_worker_made_is_removed_when_its_job_is_reaped(world):
    job = provisioning.create_vm(world.host, params(), actor=world.oscar)

    def worker_dies(vm, action, *, actor, client_address=None):
        raise SystemExit("killed")  # not an Exception: the runner cannot catch it, like a SIGKILL

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(vm_services, "run_lifecycle", worker_dies)
        with pytest.raises(SystemExit):
            runner.run_job(job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING and set(job.state) >= {"uuid", "volume"}
    assert domain.domain_exists(world.host.uri, uuid=job.state["uuid"]) and in_pool(world.host, "web1.qcow2")
    Job.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    assert runner.reap_dead_jobs() == [job.pk]
    assert not domain.domain_exists(world.host.uri, uuid=job.state["uuid"])
    assert not in_pool(world.host, "web1.qcow2")
    assert not VirtualMachine.objects.filter(name="web1").exists()


def test_a_vm_defined_meanwhile_under_the_same_name_is_left_alone(world):
    job = provisioning.create_vm(world.host, params(), actor=world.oscar)
    # Someone defines "web1" outside the panel after the request was accepted.
    domain.define(world.host.uri, domain_xml.build_domain_xml(domain_xml.DomainSpec(name="web1")))
    assert runner.run_job(job.pk) == JobStatus.FAILED
    job.refresh_from_db()
    assert "already exists" in job.error
    assert domain.domain_exists(world.host.uri, name="web1")  # theirs is still there
    assert not in_pool(world.host, "web1.qcow2")  # ours is gone


# ---- clone ----


def test_a_running_vm_is_not_cloned(world):
    with pytest.raises(ServiceError) as refused:
        provisioning.clone_vm(world.running_vm, {}, actor=world.root)
    assert refused.value.status == 409
    assert "shut the VM down or pause it first" in refused.value.message
    assert not Job.objects.exists()


def test_a_paused_vm_may_be_cloned(world):
    paused = vm_services.run_lifecycle(world.running_vm, "suspend", actor=world.root)
    assert provisioning.validate_clone(paused, {})["name"] == f"{paused.name}-clone"


@pytest.mark.parametrize("name", [n for n in BAD_NAMES if n not in ("", "  ", None)], ids=repr)
def test_bad_clone_names_are_refused(world, name):
    with pytest.raises(provisioning.FieldError) as refused:
        provisioning.clone_vm(world.vm, {"name": name}, actor=world.root)
    assert (refused.value.field, refused.value.status) == ("name", 400)
    assert not Job.objects.exists()


def test_clone_names_count_up_like_virt_clone(world):
    assert provisioning.validate_clone(world.vm, {})["name"] == "vm0002-clone"
    domain.define(world.host.uri, domain_xml.build_domain_xml(domain_xml.DomainSpec(name="vm0002-clone")))
    cleaned = provisioning.validate_clone(world.vm, {})
    assert cleaned["name"] == "vm0002-clone-1"
    assert cleaned["copies"] == [
        {"target": "vda", "pool": "default", "name": "vm0002-clone-1.qcow2", "bytes": cleaned["copies"][0]["bytes"]}
    ]


@pytest.mark.parametrize(
    ("clone_params", "status", "words"),
    [
        ({"name": "a/b"}, 400, "VM name"),
        ({"name": "vm0001"}, 409, "already exists"),
        ({"pool": "nope"}, 400, "no active storage pool"),
        ({"start": "please"}, 400, "true or false"),
    ],
)
def test_bad_clone_requests_are_refused(world, clone_params, status, words):
    with pytest.raises(ServiceError) as refused:
        provisioning.clone_vm(world.vm, clone_params, actor=world.root)
    assert refused.value.status == status and words in refused.value.message
    assert not Job.objects.exists()


def test_a_second_job_on_the_same_vm_is_refused(world):
    first = provisioning.clone_vm(world.vm, {}, actor=world.root)
    with pytest.raises(ServiceError) as refused:
        provisioning.clone_vm(world.vm, {}, actor=world.root)
    assert refused.value.status == 409
    assert refused.value.message == f"Another job (vm.clone #{first.pk}) is already running on this VM."


def test_cloning_needs_vm_clone_on_the_vm_and_vm_create_on_the_host(world):
    with pytest.raises(AccessDenied):
        provisioning.clone_vm(world.vm, {}, actor=world.alice)  # the owner role has no vm.clone
    cloner, _created = Role.objects.get_or_create(name="Cloner", defaults={"privileges": ["vm.view", "vm.clone"]})
    grant_role(actor=world.root, role=cloner, scope=world.vm.scope, user=world.alice)
    with pytest.raises(AccessDenied, match=r"vm\.create privilege on the host"):
        provisioning.clone_vm(world.vm, {}, actor=world.alice)
    assert provisioning.clone_vm(world.vm, {}, actor=world.oscar).kind == "vm.clone"


def test_the_clone_job_copies_the_disk_and_defines_a_vm_with_a_new_mac(world):
    job = provisioning.clone_vm(world.vm, {}, actor=world.oscar)
    assert runner.run_job(job.pk) == JobStatus.SUCCEEDED, [line.line for line in job.log_lines.all()]
    job.refresh_from_db()
    clone = VirtualMachine.objects.get(pk=job.result["vm"])
    assert clone.name == "vm0002-clone" and clone.owner == world.oscar and clone.uuid != world.vm.uuid
    assert clone.disks[0]["source"] == "/pool/vm0002-clone.qcow2" and in_pool(world.host, "vm0002-clone.qcow2")
    assert clone.nics[0]["mac"] != world.vm.nics[0]["mac"]
    assert job.vm == world.vm and job.percent == 100


def test_a_clone_that_fails_after_copying_deletes_the_copy(world, monkeypatch):
    job = provisioning.clone_vm(world.vm, {}, actor=world.oscar)

    def refuse(*args, **kwargs):
        raise ServiceError("libvirt said no", status=409)

    monkeypatch.setattr(vm_services, "define_vm", refuse)
    assert runner.run_job(job.pk) == JobStatus.FAILED
    assert not in_pool(world.host, "vm0002-clone.qcow2")
    assert not VirtualMachine.objects.filter(name="vm0002-clone").exists()
