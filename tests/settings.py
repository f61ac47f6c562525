"""Settings for the test suite: the development defaults plus a test database, a separate Celery
queue and channel prefix on the same private Redis, test:/// hosts allowed, fast reconnects."""

import os
from pathlib import Path

from kvmpanel.settings import *  # noqa: F403
from kvmpanel.settings import CHANNEL_LAYERS, DATABASES, VAR_DIR

# KVMPANEL_TEST_DB lets two test runs share a checkout (each with its own database file); the
# test processes (daphne, the listener, the console proxy) inherit it from the environment.
_TEST_DB = os.environ.get("KVMPANEL_TEST_DB") or str(VAR_DIR / "test.sqlite3")
DATABASES["default"]["NAME"] = _TEST_DB
DATABASES["default"]["TEST"] = {"NAME": _TEST_DB}
# A second run (its own KVMPANEL_TEST_DB) also gets its own queue, channel prefix and Redis keys:
# otherwise one run's worker would take the other run's jobs and find no such row.
_RUN = "kvmpanel-test" if "KVMPANEL_TEST_DB" not in os.environ else f"kvmpanel-test-{Path(_TEST_DB).stem}"
CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = _RUN
CELERY_TASK_DEFAULT_QUEUE = _RUN
KVMPANEL_ALLOW_TEST_DRIVER = True
KVMPANEL_RECONNECT_MAX_SECONDS = 2
KVMPANEL_RECONCILE_SECONDS = 5
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed: tests log in often
KVMPANEL_CONSOLE_RECHECK_SECONDS = 1
KVMPANEL_CONSOLE_TICKETS_PER_MINUTE = 1000
KVMPANEL_REDIS_NAMESPACE = _RUN
