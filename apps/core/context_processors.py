from django.utils.translation import gettext as _

from apps.hosts.choices import HostStatus
from apps.vms.choices import STATE_REASONS, PowerState


def live_labels(request) -> dict:
    """Labels the live-update script shows, in the viewer's language.

    Pushed messages carry only values (state "running"), never text: one message goes to every open
    page, and each page must show it in its own user's language.
    """
    labels = {value: str(label) for value, label in PowerState.choices}
    labels |= {f"host-{value}": str(label) for value, label in HostStatus.choices}
    labels |= {f"reason-{value}": str(label) for value, label in STATE_REASONS.items()}
    labels |= {"missing": _("missing"), "deleted": _("deleted")}
    return {"live_labels": labels}
