"""The inventory's copy of each host's storage pools and their volumes.

libvirt is the truth; `apps.storage.services.sync_pools` rewrites these rows after every storage
write, on host refresh and on the Refresh action. Pages and list endpoints read only these columns.
A pool belongs to its host for authorization: seeing it needs `host.view` on the host, changing it
`storage.manage`.
"""

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.accounts.permissions import RestrictedQuerySet
from apps.hosts.models import Host


class HostStorage(models.Model):
    """What the last pool sync learned about a host as a whole."""

    host = models.OneToOneField(Host, on_delete=models.CASCADE, related_name="storage")
    pool_types = models.JSONField(
        _("supported pool types"), default=list, blank=True, help_text=_("From `virsh pool-capabilities`")
    )
    synced_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"storage of {self.host}"


class StoragePool(models.Model):
    host = models.ForeignKey(Host, on_delete=models.CASCADE, related_name="storage_pools")
    name = models.CharField(_("name"), max_length=128)
    uuid = models.CharField(max_length=36, blank=True)
    type = models.CharField(_("type"), max_length=16)
    path = models.CharField(_("target path"), max_length=1024, blank=True)
    active = models.BooleanField(_("active"), default=False)
    autostart = models.BooleanField(_("autostart"), default=False)
    persistent = models.BooleanField(default=True)
    capacity_bytes = models.PositiveBigIntegerField(_("capacity"), default=0)
    allocation_bytes = models.PositiveBigIntegerField(_("allocation"), default=0)
    available_bytes = models.PositiveBigIntegerField(_("available"), default=0)
    observed_at = models.DateTimeField(null=True, blank=True)

    objects = RestrictedQuerySet.as_manager()
    scope_fields = [("hosts", "host_id")]
    view_privilege = "host.view"

    class Meta:
        ordering = ["host__name", "name"]
        constraints = [models.UniqueConstraint(fields=["host", "name"], name="unique_pool_name_per_host")]

    def __str__(self) -> str:
        return self.name

    def scope_chain(self) -> list[tuple[str, int | None]]:
        return [("hosts", self.host_id)]

    @property
    def used_percent(self) -> int:
        return round(100 * self.allocation_bytes / self.capacity_bytes) if self.capacity_bytes else 0


class StorageVolume(models.Model):
    pool = models.ForeignKey(StoragePool, on_delete=models.CASCADE, related_name="volumes")
    name = models.CharField(_("name"), max_length=255)
    path = models.CharField(_("path"), max_length=1024)
    type = models.CharField(_("type"), max_length=16, default="file")
    format = models.CharField(_("format"), max_length=16, blank=True)
    capacity_bytes = models.PositiveBigIntegerField(_("capacity"), default=0)
    allocation_bytes = models.PositiveBigIntegerField(_("allocation"), default=0)
    physical_bytes = models.PositiveBigIntegerField(_("file size"), default=0)
    backing_path = models.CharField(_("backing file"), max_length=1024, blank=True)

    objects = RestrictedQuerySet.as_manager()
    scope_fields = [("hosts", "pool__host_id")]
    view_privilege = "host.view"

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["pool", "name"], name="unique_volume_name_per_pool")]

    def __str__(self) -> str:
        return self.name

    def scope_chain(self) -> list[tuple[str, int | None]]:
        return [("hosts", self.pool.host_id)]

    @property
    def sparse(self) -> bool:
        """True when the volume occupies noticeably less than its capacity (thin / sparse)."""
        return self.allocation_bytes < self.capacity_bytes * 0.9


class StorageUpload(models.Model):
    """An upload in progress: the volume exists on the host at its full size and fills part by part.

    Browsers send a file in parts of a few MiB (one request each), so no process ever holds more
    than one part: the ASGI server keeps a whole request body in memory before the panel sees it.
    The row goes when the last part lands (the volume is then an ordinary volume) or when the
    upload is aborted or left idle (its volume is deleted with it).
    """

    pool = models.ForeignKey(StoragePool, on_delete=models.CASCADE, related_name="uploads")
    name = models.CharField(_("name"), max_length=255)
    size_bytes = models.PositiveBigIntegerField(_("size"))
    received_bytes = models.PositiveBigIntegerField(_("received"), default=0)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="storage_uploads"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now)

    objects = RestrictedQuerySet.as_manager()
    scope_fields = [("hosts", "pool__host_id")]
    view_privilege = "host.view"

    class Meta:
        ordering = ["created_at"]
        constraints = [models.UniqueConstraint(fields=["pool", "name"], name="unique_upload_name_per_pool")]

    def __str__(self) -> str:
        return self.name

    def scope_chain(self) -> list[tuple[str, int | None]]:
        return [("hosts", self.pool.host_id)]

    @property
    def percent(self) -> int:
        return 100 * self.received_bytes // self.size_bytes if self.size_bytes else 0
