"""A real Celery worker, on the real Redis broker, runs the host refresh task."""

import os
import subprocess
import sys

import pytest

from apps.hosts.models import Host
from apps.hosts.tasks import refresh_host
from tests.conftest import ARTIFACTS, ROOT


@pytest.fixture
def worker(transactional_db):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    ARTIFACTS.mkdir(exist_ok=True)
    with open(ARTIFACTS / "worker.log", "w") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "kvmpanel",
                "worker",
                "-Q",
                "kvmpanel-test",
                "-P",
                "solo",
                "--loglevel=INFO",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        yield process
        process.terminate()
        process.wait(timeout=20)


@pytest.mark.django_db(transaction=True)
def test_a_worker_refreshes_a_host_and_reconciles_its_vms(worker, test_host):
    Host.objects.filter(pk=test_host.pk).update(cpu_count=0)
    test_host.vms.all().delete()
    result = refresh_host.apply_async(args=[test_host.pk], queue="kvmpanel-test").get(timeout=60)
    assert result == {"host": "testhost", "status": "up", "changed": 4, "vms": 4}
    assert Host.objects.get(pk=test_host.pk).cpu_count == 8
