"""Quotas on users and projects: usage counted from the inventory, reserved atomically by jobs.

Usage of a user (the VMs they own) or a project (the VMs in it) is:
- the inventory (the truth): VMs not missing from their host, their maximum vCPUs and maximum memory,
  and the capacity of their disks (device "disk" whose source is a volume in the storage inventory;
  CD-ROMs and disks outside any known pool are not counted);
- plus the reservations of active (queued or running) jobs, kept in `Job.params["reservation"]`.
  A VM a job is still making (its UUID in the job's state) counts only through that reservation, so it
  is not counted twice. When the job ends its reservation stops counting: a finished job's VM is in the
  inventory, a failed or cancelled job's VM is not, so a failure releases the reservation by itself.

The check and the job row are written in one transaction (`enqueue_job` calls the kind's `reserve`
hook inside it) after an UPDATE of each Quota row involved: the UPDATE takes a write lock (a row lock
on PostgreSQL, the database write lock on SQLite), so concurrent reservations against one quota run
one after the other and each sees the others' jobs.
"""

from dataclasses import asdict, dataclass
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils.translation import gettext as _

from apps.accounts.models import Project, Quota
from apps.accounts.permissions import has_privilege
from apps.core.errors import AccessDenied, ServiceError
from apps.jobs.choices import JobStatus
from apps.jobs.models import Job

MIB = 1 << 20
GIB = 1 << 30
ACTIVE = [JobStatus.QUEUED, JobStatus.RUNNING]


@dataclass(frozen=True)
class Usage:
    vms: int = 0
    vcpus: int = 0
    memory_mib: int = 0
    disk_bytes: int = 0

    def __add__(self, other: "Usage") -> "Usage":
        return Usage(
            vms=self.vms + other.vms,
            vcpus=self.vcpus + other.vcpus,
            memory_mib=self.memory_mib + other.memory_mib,
            disk_bytes=self.disk_bytes + other.disk_bytes,
        )

    @property
    def disk_gib(self) -> float:
        return round(self.disk_bytes / GIB, 2)


def _subject_filter(*, user=None, project: Project | None = None) -> tuple[dict[str, Any], str, int]:
    if (user is None) == (project is None):
        raise ValueError("usage of a user or of a project")
    if user is not None:
        return {"owner": user}, "user", user.pk
    return {"project": project}, "project", project.pk


def disk_capacity(vms) -> int:
    """Capacity in bytes of the VMs' disks that are volumes in the storage inventory."""
    from apps.storage.models import StorageVolume

    paths = {
        disk.get("source") for vm in vms for disk in vm.disks if disk.get("device") == "disk" and disk.get("source")
    }
    if not paths:
        return 0
    # A volume path can show in two pools' inventories (a shared directory): count each path once.
    capacities = dict(StorageVolume.objects.filter(path__in=paths).values_list("path", "capacity_bytes"))
    return sum(capacities.values())


def vm_usage(vm) -> Usage:
    """What one VM takes: itself, its maximum vCPUs and memory, its disks' capacity."""
    return Usage(vms=1, vcpus=vm.vcpus_max, memory_mib=vm.memory_max_kib // 1024, disk_bytes=disk_capacity([vm]))


def current_usage(*, user=None, project: Project | None = None) -> Usage:
    """The inventory's VMs of the user (owned) or project, plus active jobs' reservations for it."""
    from apps.vms.models import VirtualMachine

    lookup, key, pk = _subject_filter(user=user, project=project)
    jobs = list(Job.objects.filter(status__in=ACTIVE, **{f"params__reservation__{key}": pk}).only("params", "state"))
    being_made = [job.state["uuid"] for job in jobs if job.state.get("uuid")]
    vms = list(VirtualMachine.objects.filter(missing=False, **lookup).exclude(uuid__in=being_made))
    usage = Usage(
        vms=len(vms),
        vcpus=sum(vm.vcpus_max for vm in vms),
        memory_mib=sum(vm.memory_max_kib for vm in vms) // 1024,
        disk_bytes=disk_capacity(vms),
    )
    for job in jobs:
        reserved = job.params["reservation"]
        usage += Usage(**{field: int(reserved.get(field, 0)) for field in ("vms", "vcpus", "memory_mib", "disk_bytes")})
    return usage


def _limits(quota: Quota) -> list[tuple[str, str, int | None, int]]:
    """(field, label, limit in Usage's unit, unit divisor for the message) for each dimension."""
    return [
        ("vms", _("VMs"), quota.max_vms, 1),
        ("vcpus", _("vCPUs"), quota.max_vcpus, 1),
        ("memory_mib", _("memory (MiB)"), quota.max_memory_mib, 1),
        ("disk_bytes", _("disk (GiB)"), None if quota.max_disk_gib is None else quota.max_disk_gib * GIB, GIB),
    ]


def _subject_name(quota: Quota) -> str:
    if quota.project_id:
        return _("project %(name)s") % {"name": quota.project.name}
    return _("user %(name)s") % {"name": quota.user.get_username()}


def refuse_over_quota(quota: Quota, used: Usage, requested: Usage) -> None:
    """ServiceError 409 "quota" naming the first limit `requested` would pass, with the current usage."""
    for field, label, limit, unit in _limits(quota):
        if limit is None:
            continue
        in_use, wanted = getattr(used, field), getattr(requested, field)
        if wanted > 0 and in_use + wanted > limit:
            raise ServiceError(
                _(
                    "Quota exceeded for %(subject)s: %(resource)s %(used)s of %(limit)s used, "
                    "this needs %(wanted)s more (limit %(limit)s)."
                )
                % {
                    "subject": _subject_name(quota),
                    "resource": label,
                    "used": _amount(in_use, unit),
                    "limit": _amount(limit, unit),
                    "wanted": _amount(wanted, unit),
                },
                status=409,
                code="quota",
            )


def _amount(value: int, unit: int) -> str:
    if unit == 1:
        return str(value)
    return f"{value / unit:.2f}".rstrip("0").rstrip(".")


def reserve(actor, *, project_id: int | None, requested: Usage) -> dict[str, Any]:
    """Check the actor's and the project's quotas and return the reservation for `Job.params`.

    Must run inside the transaction that inserts the job row (enqueue_job's): the lock UPDATE, the
    usage read and the insert are then one serialized unit per quota.
    """
    quotas = list(
        Quota.objects.filter(user_id=getattr(actor, "pk", None)).select_related("user")
        if getattr(actor, "pk", None)
        else []
    )
    if project_id is not None:
        quotas += list(Quota.objects.filter(project_id=project_id).select_related("project"))
    _lock_and_check(quotas, requested)
    return {"user": getattr(actor, "pk", None), "project": project_id, **asdict(requested)}


def clean_project(actor, value: object) -> int | None:
    """The project a new VM goes in: None, or one the actor may create VMs in (else 404/403)."""
    if value in (None, ""):
        return None
    try:
        project = Project.objects.get(pk=int(value))
    except (TypeError, ValueError, Project.DoesNotExist) as error:
        raise ServiceError(_("No such project."), status=404, code="not-found") from error
    if not has_privilege(actor, project, "vm.view"):
        raise ServiceError(_("No such project."), status=404, code="not-found")
    if not has_privilege(actor, project, "vm.create"):
        raise AccessDenied(_("You may not create VMs in project %(name)s.") % {"name": project.name})
    return project.pk


def reserve_new_vm(actor, target, cleaned: dict[str, Any]) -> dict[str, Any]:
    """JobKind.reserve for vm.create: one VM with the requested maximum vCPUs, memory and disk."""
    project_id = clean_project(actor, cleaned.get("project"))
    requested = Usage(
        vms=1,
        vcpus=int(cleaned.get("max_vcpus") or cleaned.get("vcpus") or 0),
        memory_mib=int(cleaned.get("max_memory_mib") or cleaned.get("memory_mib") or 0),
        disk_bytes=int(cleaned.get("disk_size_bytes") or 0),
    )
    return reserve(actor, project_id=project_id, requested=requested)


def reserve_clone(actor, source, cleaned: dict[str, Any]) -> dict[str, Any]:
    """JobKind.reserve for vm.clone: a copy of the source, in the source's project."""
    return reserve(actor, project_id=source.project_id, requested=vm_usage(source))


def refuse_growth_over_quota(vm, requested: Usage) -> None:
    """For changes made at once, not as jobs (a disk attached or grown): the VM's owner's and project's
    quotas must have room for `requested`. Checked under the same quota lock as reservations."""
    quotas = list(Quota.objects.filter(user_id=vm.owner_id).select_related("user")) if vm.owner_id else []
    if vm.project_id:
        quotas += list(Quota.objects.filter(project_id=vm.project_id).select_related("project"))
    if quotas:
        with transaction.atomic():
            _lock_and_check(quotas, requested)


def _lock_and_check(quotas: list[Quota], requested: Usage) -> None:
    """Lock each quota row (the UPDATE), then compare its usage plus `requested` with its limits."""
    for quota in quotas:
        Quota.objects.filter(pk=quota.pk).update(reservations=F("reservations") + 1)
    for quota in quotas:
        used = current_usage(user=quota.user) if quota.user_id else current_usage(project=quota.project)
        refuse_over_quota(quota, used, requested)
