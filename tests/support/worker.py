"""A real Celery worker process on the test queue (tests/settings.py), shared by every job test."""

import os
import subprocess
import sys

import pytest
from django.conf import settings

from tests.conftest import ARTIFACTS, ROOT


def start_worker(log_name: str) -> subprocess.Popen:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    ARTIFACTS.mkdir(exist_ok=True)
    argv = [sys.executable, "-m", "celery", "-A", "kvmpanel", "worker", "-P", "solo", "--loglevel=INFO"]
    argv += ["-Q", settings.CELERY_TASK_DEFAULT_QUEUE, "-n", f"{log_name}-{os.getpid()}@%h"]
    with open(ARTIFACTS / f"{log_name}-{settings.CELERY_TASK_DEFAULT_QUEUE}.log", "a") as log:
        return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def stop_worker(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def worker(transactional_db):
    """One worker for the test (jobs run in it, on its own database connection)."""
    process = start_worker("jobs-worker")
    yield process
    stop_worker(process)
