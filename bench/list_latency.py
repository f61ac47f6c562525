"""VM list latency: server time of the VM list (API and HTML page) at 100 and 1,000 VMs.

DESIGN: list requests read the inventory (VirtualMachine rows) only and make zero libvirt calls;
the target is a median of at most 50 ms at 1,000 VMs. This script checks both halves of that:

* Inventory: 10 libvirt test:/// hosts with size/10 domains each (half running), written into the
  inventory by the real sync path, `reconcile_host` (its duration is reported too).
* Viewer: a non-superuser with the built-in Operator role on "/", plus NoAccess on 5 VMs and VMUser
  on 5 others, so the permission filter has real grants to turn into SQL.
* Measured in-process with Django's test client (server time, no network): the median of 30 timed
  requests, after 5 warm-ups, for `/api/v1/vms/`, `/vms/` and the filtered API. One request of
  each kind is also run under query capture, and every request counts libvirt calls.

Output is one `name: value` line per figure on stdout (progress goes to stderr). The script uses
its own throwaway SQLite database under var/bench/, never the test suite's. It exits non-zero when
a request fails, returns the wrong rows or calls libvirt; it never judges the timings.

Run from the repository root: `.venv/bin/python bench/list_latency.py` (or `make bench`).
"""

import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from django.http import HttpResponse
    from django.test import Client

    from apps.accounts.models import User
    from apps.vms.models import VirtualMachine

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "var" / "bench"
DB_PATH = BENCH_DIR / "bench.sqlite3"
SIZES = (100, 1000)
HOSTS = 10
WARMUP = 5
RUNS = 30
PAGE_SIZE = 100
NO_ACCESS_VMS = 5
VM_USER_VMS = 5
API_URL = "/api/v1/vms/"
HTML_URL = "/vms/"
FILTER = {"state": "running", "name": "vm00"}
FILTERED_URL = f"{API_URL}?state={FILTER['state']}&name={FILTER['name']}"

Check = Callable[["HttpResponse"], None]


class BenchError(Exception):
    """Something is wrong with what was measured: the figures would be meaningless."""


@dataclass
class Expected:
    """What the bench user must see, worked out from the inventory without the permission gate."""

    visible: int
    filtered: int
    hidden_ids: set[int]
    hidden_names: list[str]


@dataclass
class SizeResult:
    size: int
    visible: int
    fill_seconds: float
    reconcile_seconds: float
    medians_ms: dict[str, float] = field(default_factory=dict)
    queries: dict[str, int] = field(default_factory=dict)
    libvirt_calls: int = 0


def progress(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


# --- set-up ------------------------------------------------------------------------------------


def configure_django() -> None:
    """tests.settings, but with a private database, an in-memory channel layer and quiet logs."""
    sys.path.insert(0, str(ROOT))
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    import django
    from django.conf import settings

    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{DB_PATH}{suffix}").unlink(missing_ok=True)
    settings.DATABASES["default"]["NAME"] = DB_PATH
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    settings.LOGGING["root"]["level"] = "WARNING"
    # WhiteNoise warns once that collectstatic has not run; the list pages do not need it.
    warnings.filterwarnings("ignore", message="No directory at", category=UserWarning)
    django.setup()


def reset_database() -> None:
    """Empty every table; post_migrate then recreates the built-in roles."""
    from django.core.management import call_command

    from apps.accounts.models import Role
    from apps.accounts.privileges import NO_ACCESS, OPERATOR, VM_USER

    call_command("flush", interactive=False, verbosity=0)
    missing = {OPERATOR, NO_ACCESS, VM_USER} - set(Role.objects.values_list("name", flat=True))
    if missing:
        raise BenchError(f"built-in roles missing after migrate: {sorted(missing)}")


def fill_inventory(size: int) -> tuple[float, float]:
    """10 test:/// hosts, size/10 domains each, synced by reconcile_host.

    Returns the seconds of the first sync (every row created) and of a second, unchanged pass (what
    the listener's periodic reconcile costs on a quiet inventory).
    """
    from apps.hosts.inventory import reconcile_host
    from apps.hosts.models import Host
    from apps.vms.models import VirtualMachine
    from tests.support.testnode import write_test_node

    node_dir = BENCH_DIR / f"nodes-{size}"
    node_dir.mkdir(exist_ok=True)
    hosts = []
    for index in range(HOSTS):
        path = node_dir / f"h{index}.xml"
        uri = write_test_node(path, vms=size // HOSTS, host_index=index, name_prefix=f"h{index}-vm")
        hosts.append(Host.objects.create(name=f"h{index}", uri=uri))
    start = time.perf_counter()
    for host in hosts:
        reconcile_host(host)
    seconds = time.perf_counter() - start
    total, running = VirtualMachine.objects.count(), VirtualMachine.objects.filter(state="running").count()
    if (total, running) != (size, size // 2):
        raise BenchError(f"inventory holds {total} VMs ({running} running) after the sync, expected {size}")
    start = time.perf_counter()
    changed = sum(reconcile_host(host) for host in hosts)
    again = time.perf_counter() - start
    if changed:
        raise BenchError(f"an unchanged reconcile reported {changed} changed rows")
    return seconds, again


def create_viewer() -> tuple["User", list["VirtualMachine"]]:
    """The operator-style bench user, and the VMs it has NoAccess on.

    Operator on "/", NoAccess on the first VMs by name (they would be on page 1) and VMUser on the
    next few, so the permission filter has real grants to turn into SQL.
    """
    from apps.accounts.models import User
    from apps.accounts.privileges import NO_ACCESS, OPERATOR, VM_USER
    from apps.accounts.services import grant_role
    from apps.vms.models import VirtualMachine

    user = User.objects.create_user(username="bench", password="bench-password-not-secret")
    grant_role(actor=None, role=OPERATOR, scope="/", user=user)
    first = list(VirtualMachine.objects.order_by("name", "pk")[: NO_ACCESS_VMS + VM_USER_VMS])
    for vm in first[:NO_ACCESS_VMS]:
        grant_role(actor=None, role=NO_ACCESS, scope=vm.scope, user=user)
    for vm in first[NO_ACCESS_VMS:]:
        grant_role(actor=None, role=VM_USER, scope=vm.scope, user=user)
    return user, first[:NO_ACCESS_VMS]


def expected_rows(hidden: list["VirtualMachine"]) -> Expected:
    """What the user must see, counted with plain ORM queries that bypass the permission gate."""
    from apps.vms.models import VirtualMachine

    hidden_ids = {vm.pk for vm in hidden}
    others = VirtualMachine.objects.exclude(pk__in=hidden_ids)
    filtered = others.filter(state=FILTER["state"], name__icontains=FILTER["name"]).count()
    expected = Expected(others.count(), filtered, hidden_ids, [vm.name for vm in hidden])
    if not expected.visible or not expected.filtered:
        raise BenchError(f"nothing to list: {expected.visible} visible VMs, {expected.filtered} match the filter")
    return expected


# --- checks: a benchmark that measures an error page is worthless --------------------------------


def api_check(expected_count: int, hidden_ids: set[int]) -> Check:
    def check(response: "HttpResponse") -> None:
        body = response.json()
        ids = {row["id"] for row in body["results"]}
        if body["count"] != expected_count or len(ids) != min(PAGE_SIZE, expected_count):
            raise BenchError(f"API listed {body['count']} VMs ({len(ids)} on the page), expected {expected_count}")
        if ids & hidden_ids:
            raise BenchError(f"API shows VMs the user has NoAccess on: {sorted(ids & hidden_ids)}")

    return check


def html_check(expected_count: int, hidden_names: list[str]) -> Check:
    def check(response: "HttpResponse") -> None:
        html = response.content.decode()
        rows = html.count("<tr data-vm-id=")
        if rows != min(PAGE_SIZE, expected_count):
            raise BenchError(f"HTML list shows {rows} rows, expected {min(PAGE_SIZE, expected_count)}")
        leaked = [name for name in hidden_names if f">{name}<" in html]
        if leaked:
            raise BenchError(f"HTML list shows VMs the user has NoAccess on: {leaked}")

    return check


def get_checked(client: "Client", url: str, check: Check) -> "HttpResponse":
    response = client.get(url)
    verify(response, url, check)
    return response


def verify(response: "HttpResponse", url: str, check: Check) -> None:
    if response.status_code != 200:
        raise BenchError(f"GET {url} returned {response.status_code}: {response.content[:300]!r}")
    check(response)


# --- measurement -------------------------------------------------------------------------------


def time_requests(client: "Client", url: str, check: Check) -> tuple[float, int]:
    """(median ms over RUNS timed requests, most libvirt calls seen in one request)."""
    from kvmpanel.virt.connection import count_hypervisor_calls

    for _ in range(WARMUP):
        get_checked(client, url, check)
    samples, most_calls = [], 0
    for _ in range(RUNS):
        with count_hypervisor_calls() as calls:
            start = time.perf_counter()
            response = client.get(url)
            samples.append(time.perf_counter() - start)
        verify(response, url, check)
        most_calls = max(most_calls, calls.count)
    return statistics.median(samples) * 1000, most_calls


def count_queries(client: "Client", url: str, check: Check) -> tuple[int, int]:
    """(SQL queries, libvirt calls) for one request."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from kvmpanel.virt.connection import count_hypervisor_calls

    with CaptureQueriesContext(connection) as queries, count_hypervisor_calls() as calls:
        get_checked(client, url, check)
    return len(queries), calls.count


def measure_size(size: int) -> SizeResult:
    from django.test import Client

    from kvmpanel.virt.connection import pool

    progress(f"{size} VMs: resetting the database and syncing {HOSTS} test hosts")
    reset_database()
    fill_seconds, reconcile_seconds = fill_inventory(size)
    pool.close_all()  # list requests must not need a connection: any call would show up below
    user, hidden = create_viewer()
    expected = expected_rows(hidden)
    client = Client(raise_request_exception=False)  # a crash is reported as a failed status, below
    client.force_login(user)
    result = SizeResult(
        size=size, visible=expected.visible, fill_seconds=fill_seconds, reconcile_seconds=reconcile_seconds
    )
    requests = {
        "api": (API_URL, api_check(expected.visible, expected.hidden_ids)),
        "html": (HTML_URL, html_check(expected.visible, expected.hidden_names)),
        "api_filtered": (FILTERED_URL, api_check(expected.filtered, expected.hidden_ids)),
    }
    for kind, (url, check) in requests.items():
        progress(f"{size} VMs: timing GET {url}")
        result.medians_ms[kind], most_calls = time_requests(client, url, check)
        result.queries[kind], calls = count_queries(client, url, check)
        result.libvirt_calls = max(result.libvirt_calls, calls, most_calls)
    return result


# --- report ------------------------------------------------------------------------------------


def report(results: dict[int, SizeResult]) -> list[tuple[str, str]]:
    small, large = results[SIZES[0]], results[SIZES[-1]]
    lines: list[tuple[str, str]] = []
    for size, result in results.items():
        lines += [
            (f"vms_total_{size}", str(size)),
            (f"vms_visible_{size}", str(result.visible)),
            (f"inventory_fill_seconds_{size}", f"{result.fill_seconds:.2f}"),
            (f"inventory_reconcile_unchanged_seconds_{size}", f"{result.reconcile_seconds:.2f}"),
            (f"vms_api_median_ms_{size}", f"{result.medians_ms['api']:.1f}"),
            (f"vms_html_median_ms_{size}", f"{result.medians_ms['html']:.1f}"),
            (f"vms_api_filtered_median_ms_{size}", f"{result.medians_ms['api_filtered']:.1f}"),
        ]
    lines += [
        ("queries_per_list_request", str(large.queries["api"])),
        ("queries_per_html_list_request", str(large.queries["html"])),
        ("libvirt_calls_per_list_request", str(max(r.libvirt_calls for r in results.values()))),
        (f"vms_api_ratio_{large.size}_vs_{small.size}", f"{large.medians_ms['api'] / small.medians_ms['api']:.2f}"),
        (f"vms_html_ratio_{large.size}_vs_{small.size}", f"{large.medians_ms['html'] / small.medians_ms['html']:.2f}"),
    ]
    for kind in large.queries:
        if large.queries[kind] != small.queries[kind]:
            progress(f"note: {kind} queries grow with the inventory ({small.queries[kind]} -> {large.queries[kind]})")
    return lines


def run() -> int:
    started = time.perf_counter()
    configure_django()
    from django.core.management import call_command

    from kvmpanel.virt.connection import pool

    try:
        progress(f"migrating {DB_PATH.relative_to(ROOT)}")
        call_command("migrate", verbosity=0, interactive=False)
        results = {size: measure_size(size) for size in SIZES}
    except BenchError as error:
        print(f"list_latency: FAILED: {error}", file=sys.stderr)
        return 1
    finally:
        pool.close_all()
    for name, value in report(results):
        print(f"{name}: {value}")
    calls = max(r.libvirt_calls for r in results.values())
    progress(f"done in {time.perf_counter() - started:.1f} s")
    if calls:
        print(f"list_latency: FAILED: a list request made {calls} libvirt call(s); it must make none", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(run())
