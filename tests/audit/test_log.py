"""The audit log page, its CSV export and its API: who may read it, each filter, the CSV (and its
injection safety), that nothing can change or delete an event, and what a page costs."""

import csv
import io
from datetime import timedelta

import pytest
from django.contrib import admin
from django.db import connection
from django.test import Client, RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from apps.accounts.services import grant_role
from apps.audit.choices import AuditResult
from apps.audit.models import AuditEvent
from apps.audit.services import record_event
from apps.audit.views import csv_safe
from tests.conftest import make_user


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def auditor(world):
    """dave: the built-in Auditor role at `/`."""
    dave = make_user("dave")
    grant_role(actor=world.root, role="Auditor", scope="/", user=dave)
    return dave


@pytest.fixture
def events(world):
    """A few events to filter: alice starts and stops her VM, oscar is denied on the host, one old."""
    made = {
        "start": record_event(actor=world.alice, verb="vm.start", target=world.vm),
        "stop": record_event(actor=world.alice, verb="vm.stop", target=world.vm, message="=cmd|' /C calc'!A0"),
        "denied": record_event(
            actor=world.oscar, verb="host.delete", target=world.host, result=AuditResult.DENIED, message="-2+3"
        ),
        "console": record_event(actor=world.alice, verb="console.open", target=world.running_vm),
    }
    old = record_event(actor=world.oscar, verb="vm.start", target=world.running_vm)
    AuditEvent.objects.filter(pk=old.pk).update(at=timezone.now() - timedelta(days=30))
    made["old"] = AuditEvent.objects.get(pk=old.pk)
    return made


def listed_ids(response) -> set[int]:
    content = response.content.decode()
    start = content.index('id="audit-table"')
    table = content[start : content.index("</table>", start)]
    return {event.pk for event in AuditEvent.objects.all() if f'data-event-id="{event.pk}"' in table}


def api_ids(client, **params) -> set[int]:
    response = client.get(reverse("audit-event-list"), params)
    assert response.status_code == 200, response.content
    return {row["id"] for row in response.json()["results"]}


# ---- who may read ----


@pytest.mark.parametrize("name", ["audit:list", "audit:export", "audit-event-list"])
def test_a_user_without_audit_view_is_refused(world, name):
    for user in (world.bob, world.carol, world.oscar):
        assert client_for(user).get(reverse(name)).status_code == 403


def test_audit_view_on_a_host_only_is_not_enough(world):
    # The log is all-or-nothing (apps/audit/selectors.py says why): a host-scoped Auditor is refused.
    grant_role(actor=world.root, role="Auditor", scope=world.host.scope, user=world.bob)
    assert client_for(world.bob).get(reverse("audit:list")).status_code == 403
    assert client_for(world.bob).get(reverse("audit-event-list")).status_code == 403


def test_an_auditor_sees_every_event_and_the_nav_link(world, auditor, events):
    response = client_for(auditor).get(reverse("audit:list"))
    assert response.status_code == 200
    assert {e.pk for e in events.values()} <= listed_ids(response)
    assert f'href="{reverse("audit:list")}"' in response.content.decode()
    assert {e.pk for e in events.values()} <= api_ids(client_for(auditor))


def test_the_nav_link_is_hidden_from_those_who_may_not_read_the_log(world):
    page = client_for(world.alice).get(reverse("vms:list")).content.decode()
    assert f'href="{reverse("audit:list")}"' not in page


def test_anonymous_visitors_are_sent_to_log_in(world):
    assert Client().get(reverse("audit:list"))["Location"].startswith(reverse("login"))
    assert Client().get(reverse("audit-event-list")).status_code == 401


# ---- filters (the page and the API read the same ones) ----


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"actor": "ALICE"}, {"start", "stop", "console"}),
        ({"verb": "vm.start"}, {"start", "old"}),
        ({"verb": "vm."}, {"start", "stop", "old"}),
        ({"verb": "vm*"}, {"start", "stop", "old"}),
        ({"target_type": "host"}, {"denied"}),
        ({"target": "vm0002"}, {"start", "stop"}),
        ({"result": "denied"}, {"denied"}),
    ],
)
def test_each_filter_narrows_the_page_and_the_api(world, auditor, events, params, expected):
    wanted = {events[name].pk for name in expected}
    mine = {e.pk for e in events.values()}
    assert listed_ids(client_for(auditor).get(reverse("audit:list"), params)) & mine == wanted
    assert api_ids(client_for(auditor), **params) & mine == wanted


def test_the_object_filter_takes_type_and_id(world, auditor, events):
    params = {"target": f"vm:{world.running_vm.pk}"}
    assert listed_ids(client_for(auditor).get(reverse("audit:list"), params)) == {
        events["console"].pk,
        events["old"].pk,
    }


def test_the_time_range_includes_both_days(world, auditor, events):
    today = timezone.localdate()
    recent = {"since": today.isoformat(), "until": today.isoformat()}
    assert events["old"].pk not in api_ids(client_for(auditor), **recent)
    assert events["start"].pk in api_ids(client_for(auditor), **recent)
    month_ago = (today - timedelta(days=30)).isoformat()
    old_only = listed_ids(client_for(auditor).get(reverse("audit:list"), {"since": month_ago, "until": month_ago}))
    assert old_only == {events["old"].pk}


def test_a_bad_date_is_a_clear_400_in_the_api_and_an_error_on_the_page(world, auditor, events):
    response = client_for(auditor).get(reverse("audit-event-list"), {"since": "yesterday"})
    assert response.status_code == 400
    assert "since" in response.json()["detail"]
    page = client_for(auditor).get(reverse("audit:list"), {"since": "yesterday"})
    assert page.status_code == 200
    assert "form-errors" in page.content.decode()


# ---- CSV ----


def read_csv(response) -> list[dict]:
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response.streaming
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_the_export_holds_the_filtered_events_newest_first(world, auditor, events):
    rows = read_csv(client_for(auditor).get(reverse("audit:export"), {"actor": "alice", "verb": "vm."}))
    assert [row["verb"] for row in rows] == ["vm.stop", "vm.start"]
    assert rows[1]["actor"] == "alice"
    assert rows[1]["target_type"] == "virtualmachine"
    assert rows[1]["target_id"] == str(world.vm.pk)


def test_the_export_carries_the_detail_as_json(world, auditor, events):
    record_event(actor=world.alice, verb="console.vnc.open", target=world.vm, detail={"view_only": True})
    rows = read_csv(client_for(auditor).get(reverse("audit:export"), {"verb": "console."}))
    assert rows[0]["detail"] == '{"view_only": true}'
    assert rows[0]["message"] == ""


def test_the_export_quotes_cells_a_spreadsheet_would_run(world, auditor, events):
    rows = read_csv(client_for(auditor).get(reverse("audit:export"), {"verb": "vm.stop"}))
    assert rows[0]["message"] == "'=cmd|' /C calc'!A0"
    rows = read_csv(client_for(auditor).get(reverse("audit:export"), {"result": "denied"}))
    assert rows[0]["message"] == "'-2+3"


@pytest.mark.parametrize("text", ["=1+1", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1"])
def test_csv_safe_quotes_every_formula_start(text):
    assert csv_safe(text) == "'" + text


def test_csv_safe_leaves_plain_text_alone():
    assert csv_safe("vm.start") == "vm.start"
    assert csv_safe(None) == ""


def test_an_event_with_no_target_or_actor_shows(world, auditor):
    system = record_event(actor=None, verb="host.refresh", message="@nightly")
    response = client_for(auditor).get(reverse("audit:list"), {"actor": "system"})
    shown = listed_ids(response)
    assert system.pk in shown
    assert set(AuditEvent.objects.filter(pk__in=shown).values_list("actor_name", flat=True)) == {"system"}
    assert f'href="{reverse("audit:export")}?actor=system"' in response.content.decode()
    rows = read_csv(client_for(auditor).get(reverse("audit:export"), {"actor": "system", "verb": "host.refresh"}))
    assert rows[0]["message"] == "'@nightly"


def test_the_page_links_to_the_export_of_the_same_filter(world, auditor, events):
    page = client_for(auditor).get(reverse("audit:list"), {"actor": "alice", "page": "1"}).content.decode()
    assert f'href="{reverse("audit:export")}?actor=alice' in page


# ---- append-only ----


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_the_api_refuses_every_write(world, events, method):
    client = client_for(world.root)
    for url in (reverse("audit-event-list"), reverse("audit-event-detail", args=[events["start"].pk])):
        response = getattr(client, method)(url, {}, content_type="application/json")
        assert response.status_code == 405
    assert AuditEvent.objects.filter(pk=events["start"].pk, verb="vm.start").exists()


@pytest.mark.parametrize("name", ["audit:list", "audit:export"])
def test_the_pages_refuse_post(world, name):
    assert client_for(world.root).post(reverse(name)).status_code == 405


def test_the_admin_allows_no_add_change_or_delete(world, events):
    model_admin = admin.site._registry[AuditEvent]
    request = RequestFactory().get("/admin/")
    request.user = world.root
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request, events["start"])
    assert not model_admin.has_delete_permission(request, events["start"])


def test_the_api_shows_one_event(world, auditor, events):
    response = client_for(auditor).get(reverse("audit-event-detail", args=[events["denied"].pk]))
    assert response.status_code == 200
    assert response.json()["verb"] == "host.delete"
    assert response.json()["result"] == "denied"


# ---- cost ----


def _queries(client, url) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


def test_a_page_costs_the_same_for_5_events_or_200(world, auditor):
    client = client_for(auditor)
    for _ in range(5):
        record_event(actor=world.alice, verb="vm.start", target=world.vm)
    few = (_queries(client, reverse("audit:list")), _queries(client, reverse("audit-event-list")))
    AuditEvent.objects.bulk_create(
        [AuditEvent(actor=world.alice, actor_name="alice", verb="vm.stop", target_type="vm") for _ in range(200)]
    )
    many = (_queries(client, reverse("audit:list")), _queries(client, reverse("audit-event-list")))
    assert many == few, (few, many)
    assert few[0] <= 8  # session, user, grants and groups, count, page, target types, the nav flag's share
    assert few[1] <= 6
