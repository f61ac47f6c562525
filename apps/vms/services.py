"""Every write to a VM: lifecycle (seed §3.4, §5.1), rename, autostart, delete, define from XML.

Each service authorizes through the one gate (again, even when the view already did), reads the
domain's current state from its host (the inventory may be a second old), refuses with a message a
user can act on, calls the hypervisor, then writes the inventory and an audit event and pushes the
change to open pages after commit. The hypervisor call runs outside any database transaction, so a
slow host never holds the database.
"""

import posixpath
from collections.abc import Callable
from dataclasses import dataclass

from django.db import transaction
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from apps.accounts.models import Grant
from apps.accounts.permissions import has_privilege
from apps.accounts.privileges import OWNER_ROLE
from apps.accounts.projects import may_create_on
from apps.accounts.services import grant_role
from apps.audit.choices import AuditResult
from apps.audit.services import audited_hypervisor_write, record_event
from apps.core.errors import AccessDenied, ServiceError, from_hypervisor
from apps.hosts.inventory import apply_summary, sync_domain
from apps.hosts.models import Host
from apps.storage.sync import resync_quietly
from apps.vms.choices import PowerState
from apps.vms.live import publish_vm
from apps.vms.models import VirtualMachine
from kvmpanel.virt import domain, storage
from kvmpanel.virt import host as virt_host
from kvmpanel.virt import xml as domain_xml
from kvmpanel.virt.errors import HypervisorError

RUNNING = {PowerState.RUNNING, PowerState.BLOCKED}
STOPPED = {PowerState.SHUTOFF, PowerState.CRASHED}


@dataclass(frozen=True)
class LifecycleAction:
    name: str  # URL segment and API action: "force-off"
    label: str
    privilege: str
    allowed_states: frozenset[str]
    refusal: str  # shown when the VM is in another state
    call: Callable[[str, str], None]
    virsh: str  # the equivalent command, shown in the UI
    dangerous: bool = False


LIFECYCLE_ACTIONS: dict[str, LifecycleAction] = {
    action.name: action
    for action in [
        LifecycleAction(
            "start",
            gettext_lazy("Start"),
            "vm.power",
            frozenset(STOPPED),
            gettext_lazy("The VM is already running."),
            domain.start,
            "virsh start {name}",
        ),
        LifecycleAction(
            "shutdown",
            gettext_lazy("Shut down"),
            "vm.power",
            frozenset(RUNNING),
            gettext_lazy("The VM is not running."),
            domain.shutdown,
            "virsh shutdown {name}",
        ),
        LifecycleAction(
            "reboot",
            gettext_lazy("Reboot"),
            "vm.power",
            frozenset(RUNNING),
            gettext_lazy("The VM is not running."),
            domain.reboot,
            "virsh reboot {name}",
        ),
        LifecycleAction(
            "suspend",
            gettext_lazy("Suspend"),
            "vm.power",
            frozenset(RUNNING),
            gettext_lazy("Only a running VM can be suspended."),
            domain.suspend,
            "virsh suspend {name}",
        ),
        LifecycleAction(
            "resume",
            gettext_lazy("Resume"),
            "vm.power",
            frozenset({PowerState.PAUSED}),
            gettext_lazy("Only a suspended (paused) VM can be resumed."),
            domain.resume,
            "virsh resume {name}",
        ),
        LifecycleAction(
            "force-off",
            gettext_lazy("Force off"),
            "vm.power",
            frozenset({*RUNNING, PowerState.PAUSED, PowerState.SHUTDOWN, PowerState.PMSUSPENDED}),
            gettext_lazy("The VM is not running."),
            domain.force_off,
            "virsh destroy {name}",
            dangerous=True,
        ),
    ]
}


def require(actor, vm: VirtualMachine | Host | None, privilege: str) -> None:
    if not has_privilege(actor, vm, privilege):
        raise AccessDenied()


def _fresh(vm: VirtualMachine) -> VirtualMachine:
    """Re-read the domain from its host before deciding anything, and store what we saw."""
    if vm.missing:
        raise ServiceError(_("The VM is missing from its host; it cannot be changed."), status=409, code="missing")
    try:
        return sync_domain(vm.host, vm.uuid) or vm
    except HypervisorError as error:
        raise from_hypervisor(error, host_name=vm.host.name) from error


def _refuse(actor, vm: VirtualMachine, verb: str, message: str, *, client_address: str | None) -> ServiceError:
    record_event(
        actor=actor, verb=verb, target=vm, result=AuditResult.REFUSED, message=message, client_address=client_address
    )
    return ServiceError(message, status=409, code="invalid-state")


def _hypervisor(actor, vm: VirtualMachine, verb: str, run: Callable[[], object], *, client_address, detail=None):
    return audited_hypervisor_write(
        run, actor=actor, verb=verb, target=vm, host_name=vm.host.name, detail=detail, client_address=client_address
    )


def run_lifecycle(vm: VirtualMachine, action_name: str, *, actor, client_address: str | None = None) -> VirtualMachine:
    action = LIFECYCLE_ACTIONS[action_name]
    verb = f"vm.{action.name}"
    require(actor, vm, action.privilege)
    vm = _fresh(vm)
    if vm.state not in action.allowed_states:
        raise _refuse(actor, vm, verb, str(action.refusal), client_address=client_address)
    _hypervisor(actor, vm, verb, lambda: action.call(vm.host.uri, vm.uuid), client_address=client_address)
    vm = sync_domain(vm.host, vm.uuid) or vm
    record_event(actor=actor, verb=verb, target=vm, client_address=client_address, detail={"state": vm.state})
    return vm


def set_autostart(vm: VirtualMachine, enabled: bool, *, actor, client_address: str | None = None) -> VirtualMachine:
    verb = "vm.autostart"
    require(actor, vm, "vm.config")
    vm = _fresh(vm)
    if not vm.persistent:
        raise _refuse(actor, vm, verb, _("A transient VM cannot start with its host."), client_address=client_address)
    _hypervisor(
        actor, vm, verb, lambda: domain.set_autostart(vm.host.uri, vm.uuid, enabled), client_address=client_address
    )
    vm = sync_domain(vm.host, vm.uuid) or vm
    record_event(actor=actor, verb=verb, target=vm, detail={"autostart": enabled}, client_address=client_address)
    return vm


def rename_vm(vm: VirtualMachine, new_name: str, *, actor, client_address: str | None = None) -> VirtualMachine:
    verb = "vm.rename"
    require(actor, vm, "vm.config")
    new_name = new_name.strip()
    try:
        domain_xml.validate_name(new_name)
    except HypervisorError as error:
        raise ServiceError(error.message, code="invalid-name") from error
    vm = _fresh(vm)
    if vm.state not in STOPPED:
        raise _refuse(actor, vm, verb, _("Shut the VM off before renaming it."), client_address=client_address)
    if new_name == vm.name:
        return vm
    if VirtualMachine.objects.filter(host=vm.host, name=new_name, missing=False).exclude(pk=vm.pk).exists():
        raise _refuse(
            actor,
            vm,
            verb,
            _("Another VM on this host is already named %(name)s.") % {"name": new_name},
            client_address=client_address,
        )
    old_name = vm.name
    _hypervisor(actor, vm, verb, lambda: domain.rename(vm.host.uri, vm.uuid, new_name), client_address=client_address)
    vm = sync_domain(vm.host, vm.uuid) or vm
    record_event(
        actor=actor, verb=verb, target=vm, detail={"from": old_name, "to": new_name}, client_address=client_address
    )
    return vm


def delete_vm(vm: VirtualMachine, *, actor, remove_disks: bool, client_address: str | None = None) -> list[str]:
    """`virsh undefine --snapshots-metadata [--remove-all-storage]`; shut-off VMs only."""
    verb = "vm.delete"
    require(actor, vm, "vm.delete")
    vm = _fresh(vm)
    if vm.state not in STOPPED:
        raise _refuse(actor, vm, verb, _("Shut the VM off before deleting it."), client_address=client_address)
    removed = _hypervisor(
        actor,
        vm,
        verb,
        lambda: domain.undefine(vm.host.uri, vm.uuid, remove_storage=remove_disks),
        client_address=client_address,
    )
    with transaction.atomic():
        record_event(
            actor=actor,
            verb=verb,
            target=vm,
            client_address=client_address,
            detail={"remove_disks": remove_disks, "removed": removed, "uuid": vm.uuid},
        )
        publish_vm(vm, deleted=True)
        Grant.objects.filter(scope=vm.scope).delete()
        vm.delete()
    if removed:  # the storage inventory forgets the deleted volumes (a new disk may take their names)
        resync_quietly(vm.host)
    return removed


def export_xml(vm: VirtualMachine, *, actor) -> str:
    """`virsh dumpxml --inactive` (never --security-info)."""
    require(actor, vm, "vm.view")
    try:
        return domain.get_xml(vm.host.uri, vm.uuid, inactive=True)
    except HypervisorError as error:
        raise from_hypervisor(error, host_name=vm.host.name) from error


def _inside_pools(path: str, pool_paths: list[str]) -> bool:
    if not path.startswith("/") or "/../" in path + "/" or posixpath.normpath(path) != path:
        return False
    return any(path.startswith(root.rstrip("/") + "/") for root in pool_paths if root)


def define_vm(
    host: Host, xml_text: str, *, actor, project_id: int | None = None, client_address: str | None = None
) -> VirtualMachine:
    """`virsh define --validate FILE`, after the panel's own checks; the actor becomes its owner.

    In a project (`project_id`), vm.create there is enough on a host of its placement."""
    verb = "vm.define"
    if not may_create_on(actor, host, project_id):
        raise AccessDenied()
    try:
        uploaded = domain_xml.vet_uploaded_domain(xml_text)
        pool_paths = [pool.path for pool in virt_host.list_pools(host.uri) if pool.active]
        outside = [path for path in uploaded.file_paths if not _inside_pools(path, pool_paths)]
        if outside:
            raise ServiceError(
                _("Disk paths must be inside a storage pool of %(host)s: %(paths)s")
                % {"host": host.name, "paths": ", ".join(outside)},
                code="path-outside-pools",
            )
        if domain.domain_exists(host.uri, name=uploaded.name, uuid=uploaded.uuid):
            raise ServiceError(
                _("A VM with this name or UUID already exists on %(host)s.") % {"host": host.name},
                status=409,
                code="exists",
            )
        summary = domain.define(host.uri, xml_text)
    except (HypervisorError, ServiceError) as error:
        refused = isinstance(error, ServiceError)
        record_event(
            actor=actor,
            verb=verb,
            result=AuditResult.REFUSED if refused else AuditResult.FAILED,
            message=error.message,
            detail={"host": host.name},
            client_address=client_address,
        )
        if refused:
            raise
        raise from_hypervisor(error, host_name=host.name) from error
    with transaction.atomic():
        vm, _changed = apply_summary(host, summary, owner=actor)
        if project_id and vm.project_id != project_id:
            VirtualMachine.objects.filter(pk=vm.pk).update(project_id=project_id)
            vm.project_id = project_id
        if vm.project_id is None:
            # A personal VM is its creator's. A project's VM is the team's: its members reach it
            # through their grant on the project, and whoever leaves the team loses it with the rest.
            grant_role(actor=actor, role=OWNER_ROLE, scope=vm.scope, user=actor)
        record_event(actor=actor, verb=verb, target=vm, client_address=client_address, detail={"uuid": vm.uuid})
    return vm


DEMO_VM_NAME = "demo"


def tiny_guest_spec(name: str, *, disk_path: str, iso_path: str, network: str = "") -> domain_xml.DomainSpec:
    """The lab's tiny live-ISO guest with an empty disk: the demo VM, and the integration tests' guests."""
    return domain_xml.DomainSpec(
        name=name,
        memory_mib=192,
        max_memory_mib=256,
        vcpus=1,
        max_vcpus=2,
        disk_path=disk_path,
        cdrom_path=iso_path,
        network=network,
        # TCG on purpose: the tiny guest's kernel is not meant for nested KVM (LAB.md §2).
        domain_type="qemu",
        # virtlogd writes the serial console here, so a boot can be waited for without a console.
        serial_log=f"/var/log/libvirt/qemu/{name}-serial.log",
        description="kvmpanel tiny lab guest",
    )


def ensure_demo_vm(
    host: Host, *, actor, iso_pool: str, iso_name: str, disk_pool: str = "default", network: str = ""
) -> VirtualMachine:
    """The demo VM of `make run`: a tiny live ISO guest (TCG) with an empty qcow2 disk, running.

    Idempotent: an existing demo VM is only started if it is shut off.
    """
    vm = VirtualMachine.objects.filter(host=host, name=DEMO_VM_NAME, missing=False).first()
    if vm is None:
        try:
            iso_path = storage.find_volume_in_pool(host.uri, iso_pool, iso_name)
            if iso_path is None:
                raise ServiceError(_("%(iso)s is not in pool %(pool)s.") % {"iso": iso_name, "pool": iso_pool})
            disk_path = storage.find_volume_in_pool(host.uri, disk_pool, f"{DEMO_VM_NAME}.qcow2")
            if disk_path is None:
                disk_path = storage.create_volume(host.uri, disk_pool, f"{DEMO_VM_NAME}.qcow2", capacity_bytes=64 << 20)
        except HypervisorError as error:
            raise from_hypervisor(error, host_name=host.name) from error
        spec = tiny_guest_spec(DEMO_VM_NAME, disk_path=disk_path, iso_path=iso_path, network=network)
        vm = define_vm(host, domain_xml.build_domain_xml(spec), actor=actor)
    if vm.state in STOPPED:
        vm = run_lifecycle(vm, "start", actor=actor)
    return vm
