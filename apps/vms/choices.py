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


# The reasons libvirt gives with a state (virsh domstate --reason), as the virt layer names them.
STATE_REASONS = {
    "unknown": _("unknown"),
    "booted": _("booted"),
    "migrated": _("migrated"),
    "restored": _("restored"),
    "from snapshot": _("from snapshot"),
    "unpaused": _("unpaused"),
    "migration canceled": _("migration canceled"),
    "save canceled": _("save canceled"),
    "wakeup": _("woken up"),
    "crashed": _("crashed"),
    "post-copy": _("post-copy migration"),
    "user": _("by a user"),
    "migrating": _("migrating"),
    "saving": _("saving"),
    "dumping": _("dumping"),
    "I/O error": _("I/O error"),
    "watchdog": _("watchdog"),
    "shutting down": _("shutting down"),
    "snapshot": _("snapshot"),
    "starting up": _("starting up"),
    "post-copy failed": _("post-copy migration failed"),
    "shutdown": _("shut down by the guest"),
    "destroyed": _("forced off"),
    "saved": _("saved"),
    "failed": _("failed to start"),
    "daemon": _("by the daemon"),
    "panicked": _("panicked"),
    "missing": _("missing from the host"),
}
