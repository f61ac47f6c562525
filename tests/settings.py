"""Settings for the test suite: the development defaults plus a test database, a separate Celery
queue and channel prefix on the same private Redis, test:/// hosts allowed, fast reconnects."""

from kvmpanel.settings import *  # noqa: F403
from kvmpanel.settings import CHANNEL_LAYERS, DATABASES, VAR_DIR

DATABASES["default"]["NAME"] = VAR_DIR / "test.sqlite3"
DATABASES["default"]["TEST"] = {"NAME": VAR_DIR / "test.sqlite3"}
CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = "kvmpanel-test"
CELERY_TASK_DEFAULT_QUEUE = "kvmpanel-test"
KVMPANEL_ALLOW_TEST_DRIVER = True
KVMPANEL_RECONNECT_MAX_SECONDS = 2
KVMPANEL_RECONCILE_SECONDS = 5
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed: tests log in often
KVMPANEL_CONSOLE_RECHECK_SECONDS = 1
KVMPANEL_CONSOLE_TICKETS_PER_MINUTE = 1000
KVMPANEL_REDIS_NAMESPACE = "kvmpanel-test"
