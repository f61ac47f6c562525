"""What creating and cloning share: input checks that name the field, facts about the host read
once per request, and the job steps both take (define once, start once, undo a define or a volume)."""

import contextlib
import shlex
import time
import uuid as uuid_module
from dataclasses import dataclass

from django.db import transaction
from django.utils.translation import gettext as _

from apps.accounts.models import Grant
from apps.audit.services import record_event
from apps.core.errors import ServiceError
from apps.hosts.models import Host
from apps.jobs.choices import ACTIVE
from apps.jobs.models import Job
from apps.storage.services import new_volume_path
from apps.storage.sync import resync_quietly, resync_volumes_quietly
from apps.vms import services as vm_services
from apps.vms.live import publish_vm
from apps.vms.models import VirtualMachine
from kvmpanel.virt import domain, storage
from kvmpanel.virt import host as virt_host
from kvmpanel.virt import xml as domain_xml
from kvmpanel.virt.errors import HypervisorError
from kvmpanel.virt.types import NetworkSummary, StoragePoolSummary

MIB = 1 << 20
PROVISIONING_KINDS = ("vm.create", "vm.clone")


class FieldError(ServiceError):
    """A refusal about one input field (`field` is its name in the API and the wizard's form)."""

    def __init__(self, field: str, message: str, *, status: int = 400, code: str = "invalid") -> None:
        super().__init__(message, status=status, code=code)
        self.field = field


def whole_number(params: dict, field: str, label: str, *, default: int | None, minimum: int, maximum: int) -> int:
    value = params.get(field, default)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise FieldError(field, _("%(field)s must be a whole number.") % {"field": label}, code="invalid-number")
    if not minimum <= value <= maximum:
        raise FieldError(
            field,
            _("%(field)s must be between %(minimum)d and %(maximum)d; %(value)d is not.")
            % {"field": label, "minimum": minimum, "maximum": maximum, "value": value},
            code="out-of-range",
        )
    return value


def flag(params: dict, field: str, default: bool = False) -> bool:
    value = params.get(field, default)
    if not isinstance(value, bool):
        raise FieldError(field, _("%(field)s must be true or false.") % {"field": field})
    return value


def clean_vm_name(value: object, field: str = "name") -> str:
    """A name libvirt, file names and shell commands all take as it is (NAME_PATTERN, ASCII only)."""
    if not isinstance(value, str) or not value.strip():
        raise FieldError(field, _("Enter a name for the VM."), code="invalid-name")
    name = value.strip()
    if not name.isascii() or not domain_xml.NAME_PATTERN.match(name) or ".." in name:
        raise FieldError(
            field,
            _(
                "A VM name is 1-63 ASCII characters: letters, digits, '.', '_' or '-', starting with a "
                "letter or digit, and never '..'."
            ),
            code="invalid-name",
        )
    return name


def name_taken(host: Host, name: str) -> bool:
    """Whether `name` is used on the host: by a VM in the inventory, a domain libvirt knows (maybe
    defined outside the panel a moment ago), or a create or clone job that will define it."""
    if VirtualMachine.objects.filter(host=host, name=name, missing=False).exists():
        return True
    if Job.objects.filter(host=host, kind__in=PROVISIONING_KINDS, status__in=ACTIVE, params__name=name).exists():
        return True
    return domain.domain_exists(host.uri, name=name)


def refuse_taken_name(host: Host, name: str, field: str = "name") -> None:
    if name_taken(host, name):
        raise FieldError(
            field,
            _("A VM named %(name)s already exists on %(host)s.") % {"name": name, "host": host.name},
            status=409,
            code="exists",
        )


@dataclass(frozen=True)
class HostFacts:
    """What validation needs to know about a host, read from it once per request."""

    pools: dict[str, StoragePoolSummary]
    networks: dict[str, NetworkSummary]
    cpu_count: int
    memory_mib: int


def host_facts(host: Host) -> HostFacts:
    capabilities = virt_host.probe(host.uri)
    return HostFacts(
        pools={pool.name: pool for pool in capabilities.pools},
        networks={network.name: network for network in capabilities.networks},
        cpu_count=capabilities.cpu_count,
        memory_mib=capabilities.memory_mib,
    )


def pool_facts(host: Host) -> HostFacts:
    """HostFacts with the host's pools only (one listing, without the capabilities XML that
    `host_facts` reads): for checks that need nothing else, such as a clone's. Its networks are
    empty and its CPU and memory 0: not the host's."""
    return HostFacts(
        pools={pool.name: pool for pool in virt_host.list_pools(host.uri)}, networks={}, cpu_count=0, memory_mib=0
    )


def active_pool(host: Host, facts: HostFacts, field: str, value: object) -> StoragePoolSummary:
    if not isinstance(value, str) or not value:
        raise FieldError(field, _("Choose a storage pool."), code="invalid-pool")
    pool = facts.pools.get(value)
    if pool is None or not pool.active:
        raise FieldError(
            field,
            _("Host %(host)s has no active storage pool named %(pool)s.") % {"host": host.name, "pool": value},
            code="invalid-pool",
        )
    return pool


def within_pool(field: str, pool: StoragePoolSummary, size: int) -> None:
    if size > pool.available_bytes:
        raise FieldError(
            field,
            _("Pool %(pool)s has %(available)s free; this needs %(size)s.")
            % {"pool": pool.name, "available": human_bytes(pool.available_bytes), "size": human_bytes(size)},
            code="no-space",
        )


def free_volume_name(host: Host, field: str, pool: str, name: str) -> str:
    """The path the new volume will have (the storage app's path rule: a pool of the host, a free
    name, no file of that name in the pool's directory either)."""
    try:
        try:
            return new_volume_path(host, pool, name)
        except ServiceError as error:
            if error.code != "no-pool":
                raise
            # The storage inventory is a cache: a pool it has not seen yet (a host just added) is
            # looked up on the host once before the request is refused.
            resync_quietly(host, names=[pool])
            return new_volume_path(host, pool, name)
    except ServiceError as error:
        raise FieldError(field, error.message, status=error.status, code=error.code) from error


def human_bytes(size: int) -> str:
    for unit, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if size >= 1 << shift:
            return f"{size / (1 << shift):.1f} {unit}"
    return f"{size} B"


# ---- job steps ----


def log_command(ctx, *argv: str) -> None:
    ctx.log("$ " + shlex.join(argv))


def new_uuid(ctx) -> str:
    """The domain's UUID, chosen and remembered before it is defined, so a cleanup can always find
    (and only ever removes) the domain this job defined."""
    if "uuid" not in ctx.state:
        ctx.remember(uuid=str(uuid_module.uuid4()))
    return ctx.state["uuid"]


def define_once(ctx, host: Host, xml_text: str) -> VirtualMachine:
    """Define through the one define path (the panel's checks, the inventory row, the owner grant
    for the requester), unless this job's domain (its remembered UUID) is there already."""
    uuid = ctx.state["uuid"]
    # The project the job reserved its quota in (apps/accounts/quotas.py) is the new VM's project.
    project_id = ctx.job.params.get("reservation", {}).get("project")
    vm = VirtualMachine.objects.filter(host=host, uuid=uuid).first()
    if vm is None or not domain.domain_exists(host.uri, uuid=uuid):
        vm = vm_services.define_vm(host, xml_text, actor=ctx.job.requested_by, project_id=project_id)
    if project_id and vm.project_id != project_id:
        VirtualMachine.objects.filter(pk=vm.pk).update(project_id=project_id)
        vm.project_id = project_id
    return vm


def wait_for_state(ctx, host: Host, uuid: str, states: set[str], *, timeout: float, on_wait=None) -> str:
    """Poll the domain's state (once a second, checking for cancel) until it is in `states`."""
    started = time.monotonic()
    while True:
        ctx.check_cancel()
        state = domain.get_domain(host.uri, uuid, with_addresses=False).state
        if state in states:
            return state
        elapsed = time.monotonic() - started
        if elapsed > timeout:
            raise HypervisorError(
                _("Gave up after %(seconds)d s waiting for the VM (it is %(state)s).")
                % {"seconds": int(elapsed), "state": state},
                code="timeout",
            )
        if on_wait is not None:
            on_wait(elapsed)
        time.sleep(1)


def start_once(ctx, vm: VirtualMachine) -> VirtualMachine:
    """`virsh start`, through the lifecycle service (its checks and audit), unless it runs already."""
    if domain.get_domain(vm.host.uri, vm.uuid, with_addresses=False).state in {"running", "blocked"}:
        return vm
    log_command(ctx, "virsh", "start", vm.name)
    return vm_services.run_lifecycle(vm, "start", actor=ctx.job.requested_by)


def discard_domain(ctx, host: Host, uuid: str) -> None:
    """Undo a define: force off, undefine (never touching storage here), drop the inventory row."""
    with contextlib.suppress(HypervisorError):
        domain.force_off(host.uri, uuid)
    try:
        domain.undefine(host.uri, uuid, remove_storage=False)
        ctx.log(f"Undefined {uuid} again")
    except HypervisorError as error:
        if error.code != "no-domain":
            raise
    with transaction.atomic():
        for vm in VirtualMachine.objects.filter(host=host, uuid=uuid):
            record_event(
                actor=ctx.job.requested_by,
                verb="vm.delete",
                target=vm,
                message=f"cleanup of job #{ctx.job.pk}",
                detail={"uuid": uuid, "job": ctx.job.pk},
            )
            publish_vm(vm, deleted=True)
            Grant.objects.filter(scope=vm.scope).delete()
            vm.delete()


def undo_what_was_made(ctx, host: Host, volumes: list[dict]) -> None:
    """The cleanup of a job that defines a VM: the domain it remembered, then the volumes it made."""
    if ctx.state.get("uuid"):
        discard_domain(ctx, host, ctx.state["uuid"])
    for volume in volumes:
        delete_volume_quietly(ctx, host, volume["pool"], volume["name"])


def delete_volume_quietly(ctx, host: Host, pool: str, name: str) -> None:
    """Delete a volume this job made; one already gone is fine."""
    try:
        storage.delete_volume(host.uri, pool, name)
        ctx.log(f"Deleted volume {pool}/{name} again")
    except HypervisorError as error:
        if error.code != "no-volume":
            raise
    resync_volumes_quietly(host, pool, [name])
