from django.db import models
from django.utils.translation import gettext_lazy as _


class AuditResult(models.TextChoices):
    OK = "ok", _("succeeded")
    DENIED = "denied", _("denied")
    REFUSED = "refused", _("refused")
    FAILED = "failed", _("failed")
