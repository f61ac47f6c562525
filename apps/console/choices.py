from django.db import models
from django.utils.translation import gettext_lazy as _


class ConsoleKind(models.TextChoices):
    VNC = "vnc", _("graphical console")
    SERIAL = "serial", _("serial console")
