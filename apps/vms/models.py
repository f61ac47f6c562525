from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.accounts.permissions import RestrictedQuerySet
from apps.hosts.models import Host
from apps.vms.choices import ACTIVE_STATES, PowerState


class VirtualMachine(models.Model):
    """The inventory's copy of one libvirt domain. libvirt is the truth; the listener keeps this fresh.

    Pages and the API read only these columns, never the hypervisor.
    """

    host = models.ForeignKey(Host, on_delete=models.PROTECT, related_name="vms")
    uuid = models.CharField(max_length=36)
    name = models.CharField(_("name"), max_length=64)
    state = models.CharField(_("state"), max_length=16, choices=PowerState.choices, default=PowerState.NOSTATE)
    state_reason = models.CharField(_("reason"), max_length=32, blank=True)
    vcpus_current = models.PositiveIntegerField(default=0)
    vcpus_max = models.PositiveIntegerField(default=0)
    memory_current_kib = models.PositiveBigIntegerField(default=0)
    memory_max_kib = models.PositiveBigIntegerField(default=0)
    autostart = models.BooleanField(default=False)
    persistent = models.BooleanField(default=True)
    disks = models.JSONField(default=list, blank=True)
    nics = models.JSONField(default=list, blank=True)
    addresses = models.JSONField(default=list, blank=True)
    console = models.CharField(_("console endpoint"), max_length=300, blank=True)
    agent_connected = models.BooleanField(default=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="owned_vms"
    )
    # A VM belongs to at most one project: grants on /projects/{id} apply to it (between vms and hosts).
    project = models.ForeignKey(
        "accounts.Project", null=True, blank=True, on_delete=models.SET_NULL, related_name="vms"
    )
    observed_at = models.DateTimeField(null=True, blank=True)
    missing = models.BooleanField(default=False, help_text=_("The domain was not found on its host"))
    missing_since = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = RestrictedQuerySet.as_manager()
    scope_fields = [("vms", "pk"), ("projects", "project_id"), ("hosts", "host_id")]
    view_privilege = "vm.view"

    class Meta:
        ordering = ["name", "pk"]
        constraints = [models.UniqueConstraint(fields=["host", "uuid"], name="unique_vm_uuid_per_host")]
        indexes = [models.Index(fields=["state"]), models.Index(fields=["name"])]

    def __str__(self) -> str:
        return self.name

    def scope_chain(self) -> list[tuple[str, int | None]]:
        project = [("projects", self.project_id)] if self.project_id else []
        return [("vms", self.pk), *project, ("hosts", self.host_id)]

    @property
    def scope(self) -> str:
        return f"/vms/{self.pk}"

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def address_list(self) -> list[str]:
        """Each address once (a lease and the guest agent usually both report it)."""
        return list(dict.fromkeys(entry["address"] for entry in self.addresses))

    @property
    def memory_current_mib(self) -> int:
        return self.memory_current_kib // 1024

    @property
    def memory_max_mib(self) -> int:
        return self.memory_max_kib // 1024
