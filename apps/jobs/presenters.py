"""What the job pages and the task panel print, computed once per request in Python.

Labels come from tables built once per request; whether a target may be linked is answered from the
grants already loaded for the request (no query per row).
"""

import shlex
from dataclasses import dataclass
from datetime import datetime

from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from apps.accounts.permissions import access_for, scope_chain
from apps.jobs.choices import ACTIVE, JobStatus
from apps.jobs.models import Job
from apps.jobs.registry import KINDS, load_kinds

# Kinds whose app does not give them a `label` (JobKind.label) are named here; any other kind shows
# its name, which reads well enough ("vm.clone").
KIND_LABELS = {
    "volume.create": gettext_lazy("Create volume"),
    "vm.create": gettext_lazy("Create VM"),
    "vm.clone": gettext_lazy("Clone VM"),
    "vm.disk.convert": gettext_lazy("Convert disk"),
    "vm.disk.move": gettext_lazy("Move disk"),
    "vm.snapshot.create": gettext_lazy("Take snapshot"),
    "vm.snapshot.revert": gettext_lazy("Revert to snapshot"),
    "vm.snapshot.delete": gettext_lazy("Delete snapshot"),
}

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def human_bytes(count: int | None) -> str:
    """1536 -> "1.5 KiB": binary units, the way virsh vol-info and qemu-img info print sizes.
    static/js/jobs.js has the same function for live updates."""
    value = float(count or 0)
    unit = 0
    while value >= 1024 and unit < len(_UNITS) - 1:
        value /= 1024
        unit += 1
    return f"{int(value)} {_UNITS[0]}" if unit == 0 else f"{value:.1f} {_UNITS[unit]}"


def clock(seconds: float | None) -> str:
    """A duration as H:MM:SS (or M:SS under an hour): the same in every language."""
    if seconds is None:
        return ""
    whole = max(0, int(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def kind_labels() -> dict[str, str]:
    """Every registered kind's label in the active language (for pages and for the live script)."""
    load_kinds()
    labels = {name: str(getattr(kind, "label", "") or KIND_LABELS.get(name, name)) for name, kind in KINDS.items()}
    return labels | {name: str(label) for name, label in KIND_LABELS.items() if name not in labels}


def kind_label(kind: str) -> str:
    return kind_labels().get(kind, kind)


def status_labels() -> dict[str, str]:
    return {value: str(label) for value, label in JobStatus.choices}


def _volume_create_command(params: dict) -> str:
    return shlex.join(
        [
            "virsh",
            "vol-create-as",
            str(params.get("pool", "")),
            str(params.get("name", "")),
            str(params.get("capacity_bytes", "")),
            "--format",
            str(params.get("format", "qcow2")),
        ]
    )


# The equivalent command of a job, for the handbook's readers. A kind may instead carry
# `command(params) -> str` (JobKind.command).
_COMMANDS = {"volume.create": _volume_create_command}


def equivalent_command(job: Job) -> str:
    load_kinds()
    kind = KINDS.get(job.kind)
    build = getattr(kind, "command", None) or _COMMANDS.get(job.kind)
    if build is None:
        return ""
    try:
        return build(job.params or {})
    except (KeyError, TypeError, ValueError):  # an old job's params may predate the kind's rules
        return ""


def elapsed_seconds(job: Job, now: datetime | None = None) -> float | None:
    if job.started_at is None:
        return None
    end = job.finished_at or now or timezone.now()
    return (end - job.started_at).total_seconds()


def short_time(moment: datetime | None, now: datetime) -> str:
    """Today's times as 14:03:07, older ones with their date (the panel and the list are narrow)."""
    if moment is None:
        return ""
    local = timezone.localtime(moment)
    if local.date() == timezone.localtime(now).date():
        return local.strftime("%H:%M:%S")
    return local.strftime("%Y-%m-%d %H:%M")


@dataclass(frozen=True)
class Target:
    name: str
    url: str  # empty when the viewer may not open it (or it is gone)
    kind: str  # "vm", "host" or ""


@dataclass(frozen=True)
class JobRow:
    job: Job
    kind_label: str
    status_label: str
    target: Target
    host: Target
    duration: str
    created: str
    started: str
    active: bool

    @property
    def url(self) -> str:
        return reverse("jobs:detail", args=[self.job.pk])


class RowBuilder:
    """Per-request constants (labels, the viewer's grants) shared by every row."""

    def __init__(self, user, *, links: bool = True) -> None:
        """`links=False` names targets without linking them: the task panel, which must cost one
        query, need not read the user's grants."""
        self.user = user
        self.kinds = kind_labels()
        self.statuses = status_labels()
        self.snapshot = access_for(user) if links else None
        self.now = timezone.now()

    def _may(self, obj, privilege: str) -> bool:
        if self.snapshot is None:
            return False
        return self.snapshot.everything or privilege in self.snapshot.privileges_on(scope_chain(obj))

    def target(self, job: Job) -> Target:
        if job.vm_id is not None and job.vm is not None:
            url = reverse("vms:detail", args=[job.vm_id]) if self._may(job.vm, "vm.view") else ""
            return Target(job.vm.name, url, "vm")
        return self.host(job)

    def host(self, job: Job) -> Target:
        if job.host_id is not None and job.host is not None:
            url = reverse("hosts:detail", args=[job.host_id]) if self._may(job.host, "host.view") else ""
            return Target(job.host.name, url, "host")
        return Target(_("(deleted)"), "", "")

    def row(self, job: Job) -> JobRow:
        return JobRow(
            job=job,
            kind_label=self.kinds.get(job.kind, job.kind),
            status_label=self.statuses.get(job.status, job.status),
            target=self.target(job),
            host=self.host(job),
            duration=clock(elapsed_seconds(job, self.now)),
            created=short_time(job.created_at, self.now),
            started=short_time(job.started_at, self.now),
            active=job.status in ACTIVE,
        )


def live_labels() -> dict[str, object]:
    """What static/js/jobs.js prints, in the viewer's language (pushes carry values only)."""
    return {
        "statuses": status_labels(),
        "kinds": kind_labels(),
        # Placeholders are filled in by the script; the same messages are used by the pages.
        "bytes": _("%(done)s of %(total)s"),
        "rate": _("%(rate)s/s"),
        "eta": _("%(time)s left"),
        "cancelling": _("Cancelling…"),
        "reconnecting": _("Reconnecting…"),
    }
