"""Job pages: the list, one job (progress and live log), cancel, the log as text, the task panel's rows.

Thin: jobs are looked up through `visible_jobs` (404 for a job the user may not see), cancel goes
through the service (403 for a user who may see but not cancel), and nothing here calls libvirt.
"""

import json

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from apps.core.errors import AccessDenied, ServiceError
from apps.core.http import action_response, client_address
from apps.jobs import selectors, services
from apps.jobs.choices import ACTIVE, JobStatus
from apps.jobs.context_processors import build_task_panel
from apps.jobs.presenters import RowBuilder, clock, elapsed_seconds, equivalent_command, human_bytes, kind_labels
from apps.vms.models import VirtualMachine

PAGE_SIZE = 50


class JobFilterForm(forms.Form):
    status = forms.ChoiceField(label=gettext_lazy("Status"), required=False)
    kind = forms.ChoiceField(label=gettext_lazy("Kind"), required=False)
    target = forms.CharField(label=gettext_lazy("VM or host"), required=False, max_length=100)
    vm = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)
    mine = forms.BooleanField(label=gettext_lazy("Only mine"), required=False)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        everything = [("", _("all"))]
        self.fields["status"].choices = everything + list(JobStatus.choices)
        kinds = sorted(kind_labels().items(), key=lambda item: item[1])
        self.fields["kind"].choices = everything + kinds
        self.fields["target"].widget.attrs["placeholder"] = _("name contains")


@login_required
@require_GET
def job_list(request: HttpRequest) -> HttpResponse:
    form = JobFilterForm(request.GET or None)
    queryset = selectors.job_ids_newest_first(request.user)
    vm_filter = None
    if form.is_valid():
        data = form.cleaned_data
        queryset = selectors.filter_jobs(
            queryset,
            status=data["status"],
            kind=data["kind"],
            vm=data["vm"],
            target=data["target"],
            mine=request.user if data["mine"] else None,
        )
        if data["vm"] is not None:
            vm_filter = VirtualMachine.objects.restrict(request.user, "vm.view").filter(pk=data["vm"]).first()
    page = Paginator(queryset, PAGE_SIZE).get_page(request.GET.get("page"))
    builder = RowBuilder(request.user)
    rows = [builder.row(job) for job in selectors.jobs_by_ids(list(page.object_list))]
    return render(
        request,
        "jobs/list.html",
        {"form": form, "page": page, "rows": rows, "vm_filter": vm_filter, "vm_filter_id": form.data.get("vm")},
    )


def _progress_facts(job, elapsed: float | None) -> dict:
    """Bytes, rate and time left as the page first shows them (static/js/jobs.js keeps them current)."""
    facts = {"bytes": "", "rate": "", "eta": ""}
    if job.bytes_total:
        facts["bytes"] = _("%(done)s of %(total)s") % {
            "done": human_bytes(job.bytes_done),
            "total": human_bytes(job.bytes_total),
        }
        if elapsed and job.bytes_done and job.status in (JobStatus.RUNNING, JobStatus.SUCCEEDED):
            # While running: the average so far (the script then follows the recent rate); after: the average.
            rate = job.bytes_done / elapsed
            facts["rate"] = _("%(rate)s/s") % {"rate": human_bytes(rate)}
            if job.status == JobStatus.RUNNING and job.bytes_done < job.bytes_total:
                facts["eta"] = _("%(time)s left") % {"time": clock((job.bytes_total - job.bytes_done) / rate)}
    return facts


def _result_vm(user, job):
    """The VM a finished job made or worked on (`result["vm"]`), if the user may see it."""
    vm_id = (job.result or {}).get("vm") if isinstance(job.result, dict) else None
    if isinstance(vm_id, bool) or not isinstance(vm_id, int):
        return None
    return VirtualMachine.objects.restrict(user, "vm.view").filter(pk=vm_id).only("pk", "name").first()


@login_required
@require_GET
def job_detail(request: HttpRequest, pk: int) -> HttpResponse:
    job = selectors.job_for_page(request.user, pk)
    row = RowBuilder(request.user).row(job)
    lines, truncated = selectors.log_tail(job)
    elapsed = elapsed_seconds(job)
    context = {
        "job": job,
        "row": row,
        "lines": lines,
        "log_truncated": truncated,
        "last_line_id": lines[-1].pk if lines else 0,
        "can_cancel": job.status in ACTIVE and not job.cancel_requested and services.can_cancel(request.user, job),
        "result_vm": _result_vm(request.user, job) if job.status == JobStatus.SUCCEEDED else None,
        "command": equivalent_command(job),
        "elapsed": elapsed,
        "progress": _progress_facts(job, elapsed),
        "params_json": json.dumps(job.params, indent=2, sort_keys=True) if job.params else "",
        "result_json": json.dumps(job.result, indent=2, sort_keys=True) if job.result else "",
    }
    return render(request, "jobs/detail.html", context)


@login_required
@require_POST
def job_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    job = selectors.job_for_page(request.user, pk)
    fallback = reverse("jobs:detail", args=[job.pk])
    try:
        job = services.request_cancel(job, actor=request.user, client_address=client_address(request))
    except AccessDenied as error:
        raise PermissionDenied(error.message) from error
    except ServiceError as error:
        return action_response(request, ok=False, message=error.message, fallback_url=fallback)
    if job.status == JobStatus.CANCELLED:
        message = _("Job #%(id)s was cancelled before it started.") % {"id": job.pk}
    else:
        message = _("Cancel requested: job #%(id)s stops at its next check and undoes what it made.") % {"id": job.pk}
    return action_response(request, ok=True, message=message, fallback_url=fallback)


@login_required
@require_GET
def job_log_text(request: HttpRequest, pk: int) -> HttpResponse:
    """The whole log as a text file, one `time  line` per entry (for a bug report or grep)."""
    job = selectors.job_for_page(request.user, pk)
    text = "".join(f"{line.at.isoformat()}  {line.line}\n" for line in job.log_lines.order_by("pk").iterator())
    response = HttpResponse(text, content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="job-{job.pk}.log"'
    return response


@login_required
@require_GET
def task_panel_rows(request: HttpRequest) -> HttpResponse:
    """The task panel's rows again: the script asks when a job it does not show yet appears."""
    return render(request, "jobs/_panel_rows.html", {"panel": build_task_panel(request.user)})
