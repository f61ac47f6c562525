"""Writes for projects and quotas: each checks `user.manage` on "/", runs in a transaction and is audited.

Who may see a project: holders of `user.manage` on "/" see all, others those they hold `vm.view` on
(a grant on /projects/{id}, or above it).
"""

from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from apps.accounts.models import Project, Quota, User
from apps.accounts.permissions import has_privilege
from apps.audit.services import record_event
from apps.core.errors import AccessDenied, ServiceError

QUOTA_FIELDS = ("max_vms", "max_vcpus", "max_memory_mib", "max_disk_gib")


def may_manage(user) -> bool:
    return has_privilege(user, None, "user.manage")


def visible_projects(user):
    projects = Project.objects.all()
    if may_manage(user):
        return projects
    return projects.filter(pk__in=[p.pk for p in projects if has_privilege(user, p, "vm.view")])


def _refuse_unless_manager(actor) -> None:
    if not may_manage(actor):
        raise AccessDenied(_("Managing projects and quotas needs the user.manage privilege on /."))


def _clean_name(name: object) -> str:
    name = (name or "").strip() if isinstance(name, str) else ""
    if not name or len(name) > 64:
        raise ServiceError(_("A project needs a name of 1 to 64 characters."), code="invalid")
    return name


def save_project(
    *, actor, project: Project | None = None, name: object, description: str = "", client_address=None
) -> Project:
    """Create (project None) or rename/describe a project."""
    _refuse_unless_manager(actor)
    creating = project is None
    project = project or Project()
    project.name = _clean_name(name)
    project.description = (description or "")[:200]
    try:
        with transaction.atomic():
            project.save()
            record_event(
                actor=actor,
                verb="project.create" if creating else "project.update",
                target=project,
                detail={"name": project.name, "description": project.description},
                client_address=client_address,
            )
    except IntegrityError as error:
        raise ServiceError(
            _("A project named %(name)s exists already.") % {"name": project.name}, status=409, code="conflict"
        ) from error
    return project


def set_quota(
    *, actor, limits: dict, user: User | None = None, project: Project | None = None, client_address=None
) -> Quota:
    """Set a user's or project's limits (None: unlimited). Lowering a limit below the usage is allowed:
    nothing is taken away, new requests are refused until the usage is under it again."""
    _refuse_unless_manager(actor)
    cleaned = {}
    for field in QUOTA_FIELDS:
        value = limits.get(field)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise ServiceError(_("%(field)s must be a whole number ≥ 0 or null.") % {"field": field}, code="invalid")
        cleaned[field] = value
    with transaction.atomic():
        quota, _created = Quota.objects.update_or_create(user=user, project=project, defaults=cleaned)
        record_event(
            actor=actor,
            verb="quota.set",
            target=project or user,
            detail=cleaned,
            client_address=client_address,
        )
    return quota


def set_project_hosts(project: Project, hosts, *, actor, client_address=None) -> Project:
    """Set where the project's members may create VMs (placement). VMs already on a host that leaves
    the placement stay where they are; only new ones are placed by it."""
    _refuse_unless_manager(actor)
    hosts = list(hosts)
    with transaction.atomic():
        project.hosts.set(hosts)
        record_event(
            actor=actor,
            verb="project.hosts",
            target=project,
            detail={"hosts": sorted(host.name for host in hosts)},
            client_address=client_address,
        )
    return project


def delete_project(project: Project, *, actor, client_address=None) -> None:
    """Delete an empty project; its quota and the grants on its scope go with it.

    Refused (409 "not-empty") while VMs are in it or a queued or running job reserves one for it: move
    or delete those first, so no VM silently leaves its team's grants and quota.
    """
    from apps.accounts.models import Grant
    from apps.accounts.quotas import ACTIVE
    from apps.jobs.models import Job

    _refuse_unless_manager(actor)
    with transaction.atomic():
        project = Project.objects.select_for_update().get(pk=project.pk)
        reserved = Job.objects.filter(status__in=ACTIVE, params__reservation__project=project.pk).exists()
        if project.vms.exists() or reserved:
            raise ServiceError(
                _("Project %(name)s still has VMs (or a job making one): move or delete them first.")
                % {"name": project.name},
                status=409,
                code="not-empty",
            )
        grants = Grant.objects.filter(scope=project.scope).select_related("user", "group", "role")
        detail = {"name": project.name, "grants": [str(grant) for grant in grants]}
        record_event(actor=actor, verb="project.delete", target=project, detail=detail, client_address=client_address)
        grants.delete()
        project.delete()


def projects_to_create_in(user, *, fresh: bool = False):
    """Projects where `user` holds vm.create (the wizard's project choices)."""
    projects = Project.objects.prefetch_related("hosts")
    return projects.filter(pk__in=[p.pk for p in projects if has_privilege(user, p, "vm.create", fresh=fresh)])


def may_create_on(user, host, project_id: int | None, *, fresh: bool = False) -> bool:
    """May `user` create a VM on `host` (in `project_id`, if given)?

    vm.create on the host itself, or vm.create on the project when the host is in its placement. The
    project's own check (vm.create there, for any creator) is apps/accounts/quotas.clean_project's.
    """
    if has_privilege(user, host, "vm.create", fresh=fresh):
        return True
    if project_id is None:
        return False
    project = Project.objects.filter(pk=project_id, hosts=host).first()
    return project is not None and has_privilege(user, project, "vm.create", fresh=fresh)


def creatable_hosts(user):
    """Hosts where `user` may create VMs: by a grant on the host, or through a project placed there."""
    from apps.hosts.models import Host

    placed = [host.pk for project in projects_to_create_in(user) for host in project.hosts.all()]
    direct = Host.objects.restrict(user, "vm.create").values_list("pk", flat=True)
    return Host.objects.filter(pk__in={*direct, *placed})
