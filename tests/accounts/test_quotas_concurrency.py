"""Acceptance 3 of issue 5: ten create requests at once against a quota of two accept exactly two.

Each thread has its own database connection (Django gives one per thread) on the file-based test
database, so the requests really race; the quota row's lock UPDATE is what serializes them."""

import threading

import pytest
from django.db import connection

from apps.accounts.models import Project, Quota
from apps.accounts.quotas import current_usage
from apps.accounts.services import grant_role
from apps.core.errors import ServiceError
from apps.jobs import services as job_services
from apps.jobs.models import Job
from apps.storage.sync import sync_pools
from apps.vms import provisioning

pytestmark = pytest.mark.django_db(transaction=True)

MIB = 1 << 20
REQUESTS = 10


def params(name: str, project: int) -> dict:
    return {
        "name": name,
        "os_variant": "debian12",
        "vcpus": 1,
        "max_vcpus": 1,
        "memory_mib": 256,
        "max_memory_mib": 256,
        "disk_pool": "default",
        "disk_size_bytes": 64 * MIB,
        "network": "isolated",
        "project": project,
    }


def race(world, project: Project) -> tuple[list, list]:
    accepted, refused = [], []
    start = threading.Barrier(REQUESTS)

    def request(index: int) -> None:
        try:
            start.wait()
            job = provisioning.create_vm(world.host, params(f"race{index}", project.pk), actor=world.oscar)
            accepted.append(job.pk)
        except ServiceError as error:
            refused.append((error.code, error.message))
        finally:
            connection.close()

    threads = [threading.Thread(target=request, args=(index,)) for index in range(REQUESTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return accepted, refused


def test_ten_parallel_creates_against_a_quota_of_two_accept_exactly_two(world, monkeypatch):
    monkeypatch.setattr(job_services, "_dispatch", lambda job_id: None)  # no worker: the jobs stay queued
    sync_pools(world.host)
    team = Project.objects.create(name="team")
    grant_role(actor=world.root, role="Operator", scope=team.scope, user=world.oscar)
    Quota.objects.create(project=team, max_vms=2)

    accepted, refused = race(world, team)

    assert len(accepted) == 2, refused
    assert len(refused) == REQUESTS - 2
    assert {code for code, _message in refused} == {"quota"}
    assert all("VMs 2 of 2 used" in message for _code, message in refused)
    assert Job.objects.filter(kind="vm.create").count() == 2
    assert current_usage(project=team).vms == 2
