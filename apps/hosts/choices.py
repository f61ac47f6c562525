from django.db import models
from django.utils.translation import gettext_lazy as _


class HostStatus(models.TextChoices):
    UNKNOWN = "unknown", _("not yet contacted")
    UP = "up", _("up")
    UNREACHABLE = "unreachable", _("unreachable")
    ERROR = "error", _("error")
