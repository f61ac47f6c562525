from django.db import models
from django.utils.translation import gettext_lazy as _


class PowerState(models.TextChoices):
    RUNNING = "running", _("running")
    BLOCKED = "blocked", _("blocked")
    PAUSED = "paused", _("paused")
    SHUTDOWN = "shutdown", _("shutting down")
    SHUTOFF = "shutoff", _("shut off")
    CRASHED = "crashed", _("crashed")
    PMSUSPENDED = "pmsuspended", _("suspended to memory")
    NOSTATE = "nostate", _("no state")


ACTIVE_STATES = {PowerState.RUNNING, PowerState.BLOCKED, PowerState.PAUSED, PowerState.SHUTDOWN, PowerState.PMSUSPENDED}
