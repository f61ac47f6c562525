"""The task panel at the bottom of every page (templates/jobs/_panel.html, included by base.html)."""

from dataclasses import dataclass

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from apps.jobs.presenters import JobRow, RowBuilder, live_labels
from apps.jobs.selectors import panel_jobs


@dataclass(frozen=True)
class TaskPanel:
    rows: list[JobRow]
    labels: dict

    @property
    def active_count(self) -> int:
        return sum(1 for row in self.rows if row.active)


def build_task_panel(user) -> TaskPanel:
    builder = RowBuilder(user, links=False)
    return TaskPanel(rows=[builder.row(job) for job in panel_jobs(user)], labels=live_labels())


def task_panel(request: HttpRequest) -> dict:
    """Lazy: a page that does not print the panel (or an anonymous visitor) costs no query; one that
    does costs one (selectors.panel_jobs)."""

    def build() -> TaskPanel | None:
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return None
        return build_task_panel(user)

    return {"task_panel": SimpleLazyObject(build)}
