"""List and detail requests read the inventory only: no hypervisor call, a fixed number of queries."""

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from apps.accounts.services import grant_role
from apps.hosts.inventory import reconcile_host
from apps.hosts.models import Host
from kvmpanel.virt.connection import count_hypervisor_calls, pool
from tests.conftest import make_user
from tests.support.testnode import write_test_node

# Session + user + grants + groups + count + page (+ hosts for the filter form on the HTML list; + the
# task panel's one query on every HTML page, apps/jobs/selectors.panel_jobs).
QUERY_BUDGET = {"vm-list": 6, "vm-detail": 5, "vms:list": 8, "vms:detail": 6, "host-list": 6, "hosts:detail": 7}


@pytest.fixture
def crowded(db, tmp_path):
    """Three hosts of 40 VMs each, and an operator with grants at three depths."""
    hosts = []
    for index in range(3):
        uri = write_test_node(tmp_path / f"node{index}.xml", vms=40, host_index=index, name_prefix=f"h{index}-")
        host = Host.objects.create(name=f"host{index}", uri=uri)
        reconcile_host(host)
        hosts.append(host)
    user = make_user("operator")
    grant_role(actor=None, role="Operator", scope="/", user=user)
    for vm in hosts[0].vms.all()[:10]:
        grant_role(actor=None, role="NoAccess", scope=vm.scope, user=user)
    grant_role(actor=None, role="Auditor", scope=hosts[1].scope, user=user)
    client = Client()
    client.force_login(user)
    yield client, hosts
    for host in hosts:
        pool.drop(host.uri)


def measure(client: Client, url: str):
    with count_hypervisor_calls() as calls, CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    return response, calls.count, len(queries)


@pytest.mark.parametrize("name", ["vm-list", "vms:list", "host-list"])
def test_list_requests_make_no_hypervisor_call_and_stay_within_budget(crowded, name):
    client, _hosts = crowded
    response, calls, queries = measure(client, reverse(name))
    assert response.status_code == 200
    assert calls == 0
    assert queries <= QUERY_BUDGET[name]


def test_the_list_is_filtered_by_the_gate(crowded):
    client, _hosts = crowded
    body = client.get(reverse("vm-list")).json()
    assert body["count"] == 110  # 120 VMs, 10 of them NoAccess


@pytest.mark.parametrize("name", ["vm-detail", "vms:detail"])
def test_detail_requests_make_no_hypervisor_call_and_stay_within_budget(crowded, name):
    client, hosts = crowded
    vm = hosts[2].vms.first()
    response, calls, queries = measure(client, reverse(name, args=[vm.pk]))
    assert response.status_code == 200
    assert calls == 0
    assert queries <= QUERY_BUDGET[name]


def test_host_detail_makes_no_hypervisor_call(crowded):
    client, hosts = crowded
    response, calls, queries = measure(client, reverse("hosts:detail", args=[hosts[0].pk]))
    assert response.status_code == 200
    assert calls == 0
    assert queries <= QUERY_BUDGET["hosts:detail"]


def test_filters_narrow_the_api_list(crowded):
    client, hosts = crowded
    running = client.get(reverse("vm-list"), {"state": "running", "host": hosts[2].pk}).json()
    assert running["count"] == 20
    assert {row["state"] for row in running["results"]} == {"running"}
    named = client.get(reverse("vm-list"), {"name": "h2-0001"}).json()
    assert [row["name"] for row in named["results"]] == ["h2-0001"]
