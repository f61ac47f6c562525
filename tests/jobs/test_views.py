"""The job pages, the task panel and the log API: who sees what, cancel over POST with CSRF, the
progress and log a page starts with, and what each costs (queries, no hypervisor call)."""

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import AnonymousUser
from django.db import connection
from django.test import Client, RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from apps.jobs.choices import JobStatus
from apps.jobs.context_processors import build_task_panel, task_panel
from apps.jobs.models import Job, JobLogLine
from kvmpanel.virt.connection import count_hypervisor_calls

GIB = 1 << 30
VOLUME = {"pool": "default", "name": "data.qcow2", "format": "qcow2", "capacity_bytes": GIB}


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def host_job(world, *, by=None, **fields) -> Job:
    """A volume.create job on the test host (requested by root unless told)."""
    fields.setdefault("params", VOLUME)
    return Job.objects.create(kind="volume.create", host=world.host, requested_by=by or world.root, **fields)


def vm_job(world, vm, *, by, **fields) -> Job:
    return Job.objects.create(kind="volume.create", vm=vm, host=vm.host, requested_by=by, **fields)


def listed(content: str) -> str:
    """The jobs table of a list page (the task panel below it has job rows too)."""
    start = content.index('id="job-table"')
    return content[start : content.index("</table>", start)]


def finished(**extra) -> dict:
    return {"status": JobStatus.SUCCEEDED, "percent": 100, "finished_at": timezone.now(), **extra}


# ---- who sees what ----


def test_the_list_shows_each_user_only_the_jobs_they_may_see(world):
    on_host = host_job(world)
    on_alices_vm = vm_job(world, world.vm, by=world.alice, **finished())

    def shown(user) -> set[int]:
        page = client_for(user).get(reverse("jobs:list"))
        assert page.status_code == 200
        return {job.pk for job in (on_host, on_alices_vm) if f'data-job-id="{job.pk}"' in listed(page.content.decode())}

    assert shown(world.bob) == set()
    assert shown(world.alice) == {on_alices_vm.pk}
    assert shown(world.carol) == {on_host.pk, on_alices_vm.pk}  # she sees the host and its VMs
    assert shown(world.root) == {on_host.pk, on_alices_vm.pk}
    assert "No jobs you can see." in client_for(world.bob).get(reverse("jobs:list")).content.decode()


@pytest.mark.parametrize("name", ["jobs:detail", "jobs:log"])
def test_a_stranger_gets_404_for_someone_elses_job(world, name):
    job = host_job(world)
    assert client_for(world.bob).get(reverse(name, args=[job.pk])).status_code == 404
    assert client_for(world.bob).get(reverse("job-log", args=[job.pk])).status_code == 404
    assert client_for(world.bob).post(reverse("jobs:cancel", args=[job.pk])).status_code == 404
    assert client_for(world.root).get(reverse(name, args=[job.pk + 1000])).status_code == 404


def test_the_requester_keeps_seeing_their_job(world):
    job = host_job(world, by=world.bob)  # bob has no grant, but it is his own job
    page = client_for(world.bob).get(reverse("jobs:detail", args=[job.pk]))
    assert page.status_code == 200
    # The host itself stays out of reach: named, not linked.
    assert reverse("hosts:detail", args=[world.host.pk]) not in page.content.decode()


def test_filters_narrow_the_list(world):
    running = host_job(world, status=JobStatus.RUNNING)
    mine = vm_job(world, world.vm, by=world.alice, **finished())
    other_vm = vm_job(world, world.running_vm, by=world.root, **finished())

    def ids(user, **query) -> set[int]:
        content = listed(client_for(user).get(reverse("jobs:list"), query).content.decode())
        return {job.pk for job in (running, mine, other_vm) if f'data-job-id="{job.pk}"' in content}

    assert ids(world.root, status="running") == {running.pk}
    assert ids(world.root, vm=world.vm.pk) == {mine.pk}
    assert ids(world.root, target=world.running_vm.name) == {other_vm.pk}
    assert ids(world.root, target="testhost") == {running.pk, mine.pk, other_vm.pk}
    assert ids(world.root, kind="volume.create", status="succeeded") == {mine.pk, other_vm.pk}
    assert ids(world.alice, mine="on") == {mine.pk}
    assert ids(world.root, mine="on") == {running.pk, other_vm.pk}
    # A filter that makes no sense shows everything rather than an error page.
    assert ids(world.root, status="bogus") == {running.pk, mine.pk, other_vm.pk}


def test_the_list_pages_fifty_jobs_at_a_time_newest_first(world):
    Job.objects.bulk_create([Job(kind="volume.create", host=world.host, requested_by=world.root) for _ in range(60)])
    newest = Job.objects.order_by("-pk").first()
    first = listed(client_for(world.root).get(reverse("jobs:list")).content.decode())
    assert first.count("<tr data-job-id=") == 50
    assert first.index(f'data-job-id="{newest.pk}"') < first.index(f'data-job-id="{newest.pk - 1}"')
    second = listed(client_for(world.root).get(reverse("jobs:list"), {"page": 2}).content.decode())
    assert second.count("<tr data-job-id=") == 10


# ---- the job page ----


def test_the_job_page_shows_progress_in_bytes_with_rate_and_time_left(world):
    job = host_job(
        world,
        status=JobStatus.RUNNING,
        percent=50,
        bytes_done=GIB // 2,
        bytes_total=GIB,
        phase="copy",
        started_at=timezone.now() - timedelta(seconds=10),
    )
    JobLogLine.objects.create(job=job, line="Copying <disk> & more")
    content = client_for(world.root).get(reverse("jobs:detail", args=[job.pk])).content.decode()
    assert 'id="job-status"' in content and ">running<" in content
    assert 'id="job-progress"' in content and 'value="50"' in content and 'aria-valuenow="50"' in content
    assert "512.0 MiB of 1.0 GiB" in content
    # Half a GiB in ten seconds (plus however long the request took on a busy machine).
    rate = float(re.search(r">(\d+\.\d) MiB/s<", content)[1])
    assert 40 <= rate <= 51.2
    assert re.search(r">0:(09|1[0-3]) left<", content)
    assert "Copying &lt;disk&gt; &amp; more" in content  # log lines are text, never markup
    assert 'id="job-cancel"' in content
    assert "virsh vol-create-as default data.qcow2 1073741824 --format qcow2" in content


def test_a_queued_job_shows_an_indeterminate_bar(world):
    job = host_job(world)
    content = client_for(world.root).get(reverse("jobs:detail", args=[job.pk])).content.decode()
    progress = content[content.index('id="job-progress"') - 200 : content.index('id="job-progress"')]
    assert "<progress" in progress and "value=" not in progress.replace("aria-valuenow", "")


def test_a_failed_job_shows_its_error_prominently_and_no_cancel(world):
    job = host_job(world, status=JobStatus.FAILED, error="Pool default is full", finished_at=timezone.now())
    content = client_for(world.root).get(reverse("jobs:detail", args=[job.pk])).content.decode()
    assert 'role="alert"' in content and "Pool default is full" in content
    assert 'id="job-cancel"' not in content


def test_the_cancel_button_is_only_for_those_who_may_cancel(world):
    job = host_job(world, status=JobStatus.RUNNING)
    assert 'id="job-cancel"' not in client_for(world.carol).get(reverse("jobs:detail", args=[job.pk])).content.decode()
    assert 'id="job-cancel"' in client_for(world.root).get(reverse("jobs:detail", args=[job.pk])).content.decode()
    own = host_job(world, by=world.oscar)  # the requester may cancel their own job
    assert 'id="job-cancel"' in client_for(world.oscar).get(reverse("jobs:detail", args=[own.pk])).content.decode()


def test_a_result_naming_a_vm_links_to_it(world):
    job = vm_job(world, world.vm, by=world.alice, **finished(result={"vm": world.vm.pk}))
    content = client_for(world.alice).get(reverse("jobs:detail", args=[job.pk])).content.decode()
    assert 'id="job-result-link"' in content
    assert f'href="{reverse("vms:detail", args=[world.vm.pk])}"' in content
    # A VM the viewer cannot see is not linked.
    hidden = host_job(world, by=world.alice, **finished(result={"vm": world.running_vm.pk + 1000}))
    content = client_for(world.alice).get(reverse("jobs:detail", args=[hidden.pk])).content.decode()
    assert 'id="job-result-link"' not in content


def test_the_page_renders_the_end_of_a_long_log(world, monkeypatch):
    from apps.jobs import selectors

    monkeypatch.setattr(selectors, "PAGE_LOG_LINES", 5)
    monkeypatch.setattr(selectors.log_tail, "__defaults__", (5,))
    job = host_job(world, **finished())
    JobLogLine.objects.bulk_create([JobLogLine(job=job, line=f"line {n}") for n in range(8)])
    content = client_for(world.root).get(reverse("jobs:detail", args=[job.pk])).content.decode()
    assert "line 2" not in content and "line 3" in content and "line 7" in content
    assert "Only the last lines are shown here." in content
    last = JobLogLine.objects.filter(job=job).order_by("-pk").first()
    assert f'data-last-line-id="{last.pk}"' in content


def test_the_log_downloads_as_text(world):
    job = host_job(world, **finished())
    JobLogLine.objects.create(job=job, line="first")
    JobLogLine.objects.create(job=job, line="second")
    response = client_for(world.carol).get(reverse("jobs:log", args=[job.pk]))
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="job-{job.pk}.log"'
    assert [line.split("  ", 1)[1] for line in response.content.decode().splitlines()] == ["first", "second"]


# ---- cancel ----


def test_cancel_refuses_get(world):
    job = host_job(world)
    assert client_for(world.root).get(reverse("jobs:cancel", args=[job.pk])).status_code == 405


def test_cancel_needs_a_csrf_token(world):
    job = host_job(world)
    client = Client(enforce_csrf_checks=True)
    client.force_login(world.root)
    assert client.post(reverse("jobs:cancel", args=[job.pk])).status_code == 403
    assert Job.objects.get(pk=job.pk).status == JobStatus.QUEUED


def test_a_viewer_may_not_cancel(world):
    job = host_job(world)
    assert client_for(world.carol).post(reverse("jobs:cancel", args=[job.pk])).status_code == 403
    job.refresh_from_db()
    assert (job.status, job.cancel_requested) == (JobStatus.QUEUED, False)


def test_cancelling_a_queued_job_stops_it_before_it_runs(world):
    job = host_job(world)
    response = client_for(world.root).post(reverse("jobs:cancel", args=[job.pk]), follow=True)
    assert response.redirect_chain[-1][0] == reverse("jobs:detail", args=[job.pk])
    assert "was cancelled before it started" in response.content.decode()
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED


def test_cancelling_a_running_job_asks_it_to_stop_and_hides_the_button(world):
    job = host_job(world, status=JobStatus.RUNNING)
    response = client_for(world.root).post(
        reverse("jobs:cancel", args=[job.pk]), HTTP_HX_REQUEST="true", HTTP_X_REQUESTED_WITH="XMLHttpRequest"
    )
    assert response["X-Action-Result"] == "ok"
    assert "stops at its next check" in response.content.decode()
    job.refresh_from_db()
    assert (job.status, job.cancel_requested) == (JobStatus.RUNNING, True)
    content = client_for(world.root).get(reverse("jobs:detail", args=[job.pk])).content.decode()
    assert 'id="job-cancel"' not in content and "Cancel requested" in content


def test_a_finished_job_cannot_be_cancelled(world):
    job = host_job(world, **finished())
    response = client_for(world.root).post(reverse("jobs:cancel", args=[job.pk]), follow=True)
    assert "The job has already finished." in response.content.decode()
    assert Job.objects.get(pk=job.pk).status == JobStatus.SUCCEEDED


# ---- the log API ----


def test_the_log_api_reads_on_from_a_line_id(world):
    job = host_job(world, status=JobStatus.RUNNING)
    lines = [JobLogLine.objects.create(job=job, line=f"step {n}") for n in range(3)]
    client = client_for(world.carol)
    everything = client.get(reverse("job-log", args=[job.pk])).json()
    assert [line["line"] for line in everything["lines"]] == ["step 0", "step 1", "step 2"]
    assert (everything["last_id"], everything["more"], everything["status"]) == (lines[2].pk, False, "running")
    later = client.get(reverse("job-log", args=[job.pk]), {"after": lines[0].pk}).json()
    assert [line["id"] for line in later["lines"]] == [lines[1].pk, lines[2].pk]
    nothing = client.get(reverse("job-log", args=[job.pk]), {"after": lines[2].pk}).json()
    assert (nothing["lines"], nothing["last_id"]) == ([], lines[2].pk)


def test_the_log_api_reads_a_long_log_in_pieces(world, monkeypatch):
    from apps.jobs import selectors

    monkeypatch.setattr(selectors.log_after, "__defaults__", (2,))
    job = host_job(world, **finished())
    JobLogLine.objects.bulk_create([JobLogLine(job=job, line=f"line {n}") for n in range(5)])
    client, after, seen = client_for(world.root), 0, []
    while True:
        body = client.get(reverse("job-log", args=[job.pk]), {"after": after}).json()
        seen += [line["line"] for line in body["lines"]]
        after = body["last_id"]
        if not body["more"]:
            break
    assert seen == [f"line {n}" for n in range(5)]


@pytest.mark.parametrize("after", ["-1", "x", "1.5"])
def test_the_log_api_refuses_a_bad_line_id(world, after):
    job = host_job(world)
    response = client_for(world.root).get(reverse("job-log", args=[job.pk]), {"after": after})
    assert response.status_code == 400
    assert response.json()["detail"]


def test_the_log_api_does_not_leak_other_jobs_lines(world):
    job, other = host_job(world), host_job(world)
    JobLogLine.objects.create(job=other, line="secret")
    assert client_for(world.root).get(reverse("job-log", args=[job.pk])).json()["lines"] == []


# ---- the task panel ----


def test_the_panel_shows_running_jobs_first_then_the_last_ten_finished_in_one_query(world):
    old_running = host_job(world, by=world.oscar, status=JobStatus.RUNNING)
    finished_jobs = [host_job(world, by=world.oscar, **finished()) for _ in range(12)]
    queued = host_job(world, by=world.oscar)
    host_job(world, by=world.root, status=JobStatus.RUNNING)  # someone else's: not in oscar's panel
    with CaptureQueriesContext(connection) as queries:
        panel = build_task_panel(world.oscar)
        [(row.target.name, row.kind_label) for row in panel.rows]
    assert len(queries) == 1, [query["sql"] for query in queries]
    ids = [row.job.pk for row in panel.rows]
    newest_finished = [job.pk for job in reversed(finished_jobs)][:10]
    assert ids == [queued.pk, old_running.pk, *newest_finished]
    assert panel.active_count == 2


def test_the_panel_costs_an_anonymous_visitor_no_query(db):
    request = RequestFactory().get("/login/")
    request.user = AnonymousUser()
    with CaptureQueriesContext(connection) as queries:
        context = task_panel(request)
        assert not context["task_panel"]
    assert len(queries) == 0


def test_the_panel_is_on_every_page_for_a_logged_in_user_only(world):
    job = host_job(world, by=world.alice, status=JobStatus.RUNNING, percent=42)
    page = client_for(world.alice).get(reverse("vms:list")).content.decode()
    assert 'id="task-panel"' in page and f'data-job-id="{job.pk}"' in page and "1 running" in page
    assert 'id="job-labels"' in page and "js/jobs.js" in page
    login = Client().get(reverse("login")).content.decode()
    assert 'id="task-panel"' not in login and "js/jobs.js" not in login


def test_the_panel_rows_come_again_for_the_script(world):
    job = host_job(world, by=world.alice)
    response = client_for(world.alice).get(reverse("jobs:panel"))
    assert response.status_code == 200
    content = response.content.decode()
    assert content.lstrip().startswith('<tbody id="task-panel-rows"')
    assert f'data-job-id="{job.pk}"' in content and 'data-active-label="1 running"' in content
    assert 'id="task-panel-rows"' in client_for(world.bob).get(reverse("jobs:panel")).content.decode()


# ---- budgets ----

# Session + user + grants + groups + count + the page's ids + its rows + the task panel.
LIST_BUDGET = 8
# Session + user + grants + groups + job + log lines + the task panel.
DETAIL_BUDGET = 7


def test_the_list_page_makes_no_hypervisor_call_and_stays_within_budget(world):
    for vm in world.host.vms.all():
        vm_job(world, vm, by=world.oscar, **finished())
        host_job(world, by=world.alice, **finished())
    client = client_for(world.oscar)
    with count_hypervisor_calls() as calls, CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("jobs:list"))
    assert response.status_code == 200
    assert listed(response.content.decode()).count("<tr data-job-id=") == 8
    assert calls.count == 0
    assert len(queries) <= LIST_BUDGET, [query["sql"] for query in queries]


def test_the_job_page_makes_no_hypervisor_call_and_stays_within_budget(world):
    job = vm_job(world, world.vm, by=world.oscar, status=JobStatus.RUNNING)
    JobLogLine.objects.bulk_create([JobLogLine(job=job, line=f"line {n}") for n in range(50)])
    client = client_for(world.oscar)
    with count_hypervisor_calls() as calls, CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("jobs:detail", args=[job.pk]))
    assert response.status_code == 200
    assert calls.count == 0
    assert len(queries) <= DETAIL_BUDGET, [query["sql"] for query in queries]
