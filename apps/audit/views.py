"""The audit log page and its CSV export: read-only (there is no view that changes or deletes an event).

Both need `audit.view` at `/` (see apps/audit/selectors.py for why not less); others get 403.
"""

import csv
import json
from collections.abc import Iterator

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET

from apps.audit import selectors
from apps.audit.choices import AuditResult
from apps.audit.models import AuditEvent

PAGE_SIZE = 50
CSV_COLUMNS = [
    "at",
    "actor",
    "verb",
    "target_type",
    "target_id",
    "target",
    "result",
    "message",
    "client_address",
    "detail",
]
# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection, OWASP).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class EventFilterForm(forms.Form):
    actor = forms.CharField(label=gettext_lazy("Actor"), required=False, max_length=150)
    verb = forms.CharField(label=gettext_lazy("Action"), required=False, max_length=64)
    target_type = forms.ChoiceField(label=gettext_lazy("Object type"), required=False)
    target = forms.CharField(label=gettext_lazy("Object"), required=False, max_length=200)
    result = forms.ChoiceField(label=gettext_lazy("Result"), required=False)
    since = forms.DateField(label=gettext_lazy("From"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(label=gettext_lazy("To"), required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        everything = [("", _("all"))]
        self.fields["result"].choices = everything + list(AuditResult.choices)
        self.fields["target_type"].choices = everything + [(kind, kind) for kind in selectors.target_types() if kind]
        self.fields["actor"].widget.attrs["placeholder"] = _("user name")
        self.fields["verb"].widget.attrs["placeholder"] = _("vm.start, or vm. for all")
        self.fields["target"].widget.attrs["placeholder"] = _("name contains, or vm:12")

    def event_filter(self) -> selectors.EventFilter:
        """The filter the form asks for; an invalid form filters nothing (its errors are shown)."""
        if not self.is_valid():
            return selectors.EventFilter()
        return selectors.EventFilter(**self.cleaned_data)


def _filtered_events(request: HttpRequest) -> tuple[EventFilterForm, object]:
    events = selectors.visible_events(request.user)
    form = EventFilterForm(request.GET or None)
    return form, selectors.filter_events(events, form.event_filter())


@login_required
@require_GET
def event_list(request: HttpRequest) -> HttpResponse:
    form, events = _filtered_events(request)
    page = Paginator(events.defer("detail"), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "audit/list.html", {"form": form, "page": page, "events": page.object_list})


def csv_safe(value) -> str:
    """The cell as text, with a leading quote when a spreadsheet would read it as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def _csv_row(event: AuditEvent) -> list[str]:
    values = [
        event.at.isoformat(),
        event.actor_name,
        event.verb,
        event.target_type,
        event.target_id,
        event.target_repr,
        event.result,
        event.message,
        event.client_address,
        json.dumps(event.detail, sort_keys=True) if event.detail else "",
    ]
    return [csv_safe(value) for value in values]


class _Echo:
    """csv.writer writes into this and gets the line back, so each row is streamed as it is made."""

    def write(self, value: str) -> str:
        return value


def _csv_lines(events) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_COLUMNS)
    for event in events.iterator(chunk_size=2000):
        yield writer.writerow(_csv_row(event))


@login_required
@require_GET
def event_export(request: HttpRequest) -> StreamingHttpResponse:
    """The filtered events (every page of them) as CSV, streamed: a long log never sits in memory."""
    _form, events = _filtered_events(request)
    response = StreamingHttpResponse(_csv_lines(events), content_type="text/csv; charset=utf-8")
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="audit-{stamp}.csv"'
    return response
