from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.accounts.permissions import RestrictedQuerySet
from apps.hosts.choices import HostStatus


class Host(models.Model):
    """A libvirt host. Capability columns are written by the probe; pages only read them."""

    name = models.CharField(_("name"), max_length=64, unique=True)
    uri = models.CharField(_("libvirt URI"), max_length=300, unique=True)
    status = models.CharField(_("status"), max_length=16, choices=HostStatus.choices, default=HostStatus.UNKNOWN)
    status_message = models.CharField(_("status message"), max_length=500, blank=True)
    status_changed_at = models.DateTimeField(null=True, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)

    hostname = models.CharField(max_length=255, blank=True)
    cpu_model = models.CharField(max_length=100, blank=True)
    cpu_count = models.PositiveIntegerField(default=0)
    memory_mib = models.PositiveBigIntegerField(default=0)
    virtualization_flags = models.JSONField(default=list, blank=True)
    kvm_usable = models.BooleanField(default=False)
    libvirt_version = models.CharField(max_length=32, blank=True)
    hypervisor = models.CharField(max_length=32, blank=True)
    hypervisor_version = models.CharField(max_length=32, blank=True)
    pools = models.JSONField(default=list, blank=True)
    networks = models.JSONField(default=list, blank=True)
    probed_at = models.DateTimeField(null=True, blank=True)
    path_map = models.JSONField(
        _("path map"),
        default=dict,
        blank=True,
        help_text=_("Where the host's directories appear on the panel's machine, e.g. for a host in a container"),
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    # Written by the probe (and only by it): the services save exactly these, the API shows them.
    CAPABILITY_FIELDS = (
        "hostname",
        "cpu_model",
        "cpu_count",
        "memory_mib",
        "virtualization_flags",
        "kvm_usable",
        "libvirt_version",
        "hypervisor",
        "hypervisor_version",
        "pools",
        "networks",
    )

    objects = RestrictedQuerySet.as_manager()
    scope_fields = [("hosts", "pk")]
    view_privilege = "host.view"

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def scope_chain(self) -> list[tuple[str, int | None]]:
        return [("hosts", self.pk)]

    @property
    def scope(self) -> str:
        return f"/hosts/{self.pk}"

    def local_path(self, path: str) -> str:
        """`path` on the host, as the panel's machine sees it (longest matching prefix of path_map)."""
        for prefix in sorted(self.path_map, key=len, reverse=True):
            if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
                return self.path_map[prefix] + path[len(prefix.rstrip("/")) :]
        return path

    @property
    def accelerator(self) -> str:
        return "KVM" if self.kvm_usable else "TCG"
