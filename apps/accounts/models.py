import hashlib

from django.conf import settings
from django.contrib.auth.models import AbstractUser, Group
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.accounts.privileges import PRIVILEGES


class User(AbstractUser):
    language = models.CharField(
        _("language"), max_length=10, blank=True, choices=settings.LANGUAGES, help_text=_("Empty: the browser's")
    )


class Role(models.Model):
    name = models.CharField(_("name"), max_length=64, unique=True)
    description = models.CharField(_("description"), max_length=200, blank=True)
    privileges = models.JSONField(_("privileges"), default=list)
    builtin = models.BooleanField(_("built-in"), default=False, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        unknown = sorted(set(self.privileges) - set(PRIVILEGES))
        if unknown:
            raise ValidationError({"privileges": _("Unknown privileges: %s") % ", ".join(unknown)})


class Grant(models.Model):
    """`role` for `user` or `group` on `scope` ("/", "/hosts/{id}", "/vms/{id}")."""

    user = models.ForeignKey(User, null=True, blank=True, on_delete=models.CASCADE, related_name="grants")
    group = models.ForeignKey(Group, null=True, blank=True, on_delete=models.CASCADE, related_name="grants")
    role = models.ForeignKey(Role, on_delete=models.PROTECT, related_name="grants")
    scope = models.CharField(_("scope"), max_length=100, default="/")
    propagate = models.BooleanField(_("propagate"), default=True, help_text=_("Also applies below this scope"))
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    created_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(user__isnull=False, group__isnull=True) | models.Q(user__isnull=True, group__isnull=False)
                ),
                name="grant_has_one_subject",
            ),
            models.UniqueConstraint(fields=["user", "role", "scope"], name="unique_user_grant"),
            models.UniqueConstraint(fields=["group", "role", "scope"], name="unique_group_grant"),
        ]
        indexes = [models.Index(fields=["scope"])]

    def __str__(self) -> str:
        subject = self.user or f"@{self.group}"
        return f"{subject}: {self.role} on {self.scope}{'' if self.propagate else ' (no propagate)'}"

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        from apps.accounts.permissions import parse_scope

        try:
            parse_scope(self.scope)
        except ValueError as exc:
            raise ValidationError({"scope": str(exc)}) from exc


def token_digest(secret: str) -> str:
    # The secret has 256 bits of entropy, so one SHA-256 is enough: no brute force can reach it.
    return hashlib.sha256(secret.encode()).hexdigest()


class ApiTokenQuerySet(models.QuerySet):
    def manageable_by(self, user) -> "ApiTokenQuerySet":
        """A user's own tokens; everyone's for holders of `user.manage` on "/" (others' tokens are 404)."""
        from apps.accounts.permissions import has_privilege

        if has_privilege(user, None, "user.manage"):
            return self.all()
        return self.filter(user_id=user.pk)


class ApiToken(models.Model):
    """An API token; only its SHA-256 digest is stored, the secret is shown once."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(_("name"), max_length=100, blank=True)
    prefix = models.CharField(max_length=12, editable=False)
    digest = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # A subset of the catalogue; empty means all of the user's privileges. Effective = user's ∩ these.
    privileges = models.JSONField(_("privileges"), default=list, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"

    @property
    def usable(self) -> bool:
        now = timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)

    @property
    def privilege_limit(self) -> frozenset[str] | None:
        """The ceiling the gate applies to requests made with this token (None: no ceiling)."""
        return frozenset(self.privileges) if self.privileges else None


class Project(models.Model):
    """A team's VMs and templates (a VM belongs to at most one). Membership is a grant on /projects/{id}."""

    name = models.CharField(_("name"), max_length=64, unique=True)
    description = models.CharField(_("description"), max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    # Placement: the hosts where members holding vm.create on the project may create its VMs, without
    # any grant on the host itself (self-service users never need to see a host's other VMs).
    hosts = models.ManyToManyField("hosts.Host", blank=True, related_name="projects", verbose_name=_("placement hosts"))

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def scope_chain(self) -> list[tuple[str, int | None]]:
        return [("projects", self.pk)]

    @property
    def scope(self) -> str:
        return f"/projects/{self.pk}"


class Quota(models.Model):
    """Limits for one user or one project; an empty limit is unlimited (apps/accounts/quotas.py enforces)."""

    user = models.OneToOneField(User, null=True, blank=True, on_delete=models.CASCADE, related_name="quota")
    project = models.OneToOneField(Project, null=True, blank=True, on_delete=models.CASCADE, related_name="quota")
    max_vms = models.PositiveIntegerField(_("VMs"), null=True, blank=True)
    max_vcpus = models.PositiveIntegerField(_("vCPUs"), null=True, blank=True)
    max_memory_mib = models.PositiveBigIntegerField(_("memory (MiB)"), null=True, blank=True)
    max_disk_gib = models.PositiveBigIntegerField(_("disk (GiB)"), null=True, blank=True)
    # Bumped by every reservation: the UPDATE takes the row's write lock, so two reservations against
    # the same quota run one after the other (PostgreSQL row lock; SQLite's database write lock).
    reservations = models.PositiveBigIntegerField(default=0, editable=False)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(user__isnull=False, project__isnull=True)
                    | models.Q(user__isnull=True, project__isnull=False)
                ),
                name="quota_has_one_subject",
            ),
        ]

    def __str__(self) -> str:
        return f"quota of {self.user or self.project}"
