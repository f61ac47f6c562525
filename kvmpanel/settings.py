"""kvmpanel settings, read from the environment (see kvmpanel/env.py).

Development (`make run`, `make test`) needs no configuration at all: SQLite, a private Redis on a
unix socket and a generated secret key, all under `var/`. Production sets KVMPANEL_PRODUCTION=1 and
must then provide SECRET_KEY, DATABASE_URL and REDIS_URL, or start-up fails with a clear message.
"""

import secrets
from datetime import timedelta
from pathlib import Path
from urllib.parse import unquote, urlparse

from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

from kvmpanel.env import env_bool, env_int, env_list, env_secret, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("KVMPANEL_VAR", str(BASE_DIR / "var")))
PRODUCTION = env_bool("KVMPANEL_PRODUCTION", False)
DEBUG = env_bool("KVMPANEL_DEBUG", False)


def _development_secret_key() -> str:
    """A per-checkout key kept in var/secret-key (0600), so sessions survive restarts."""
    path = VAR_DIR / "secret-key"
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(50))
    return path.read_text().strip()


def _required(name: str) -> str:
    value = env_secret(name)
    if not value:
        raise ImproperlyConfigured(f"{name} must be set when KVMPANEL_PRODUCTION=1")
    return value


SECRET_KEY = _required("SECRET_KEY") if PRODUCTION else (env_secret("SECRET_KEY") or _development_secret_key())
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "django_otp",
    "axes",
    "apps.core",
    "apps.accounts",
    "apps.accounts.otp",
    "apps.audit",
    "apps.hosts",
    "apps.vms",
    "apps.console",
    "apps.jobs",
    "apps.storage",
    "apps.networks",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "apps.accounts.otp.middleware.TwoFactorMiddleware",
    "apps.accounts.middleware.UserLanguageMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Turns a lockout flagged during the request into the login page with the reason (lockout.py).
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "kvmpanel.urls"
ASGI_APPLICATION = "kvmpanel.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "apps.core.context_processors.live_labels",
                "apps.jobs.context_processors.task_panel",
            ],
        },
    },
]


# The inventory listener, the worker, the console proxy and daphne write concurrently: wait rather
# than fail, take the write lock at BEGIN (no upgrade deadlocks), and let readers run beside writers.
_SQLITE_OPTIONS = {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}


def _database_from_url(url: str) -> dict:
    parsed = urlparse(url)
    if parsed.scheme in {"postgres", "postgresql"}:
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": parsed.path.lstrip("/"),
            "USER": unquote(parsed.username or ""),
            "PASSWORD": unquote(parsed.password or ""),
            "HOST": parsed.hostname or "",
            "PORT": str(parsed.port or ""),
            "CONN_MAX_AGE": 60,
        }
    if parsed.scheme == "sqlite":
        # sqlite:////abs/path.db (absolute) or sqlite:///relative/path.db
        path = parsed.path[1:] if parsed.path.startswith("//") else parsed.path.lstrip("/")
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": path, "OPTIONS": _SQLITE_OPTIONS}
    raise ImproperlyConfigured(f"DATABASE_URL scheme {parsed.scheme!r} is not supported (postgres, sqlite)")


_database_url = _required("DATABASE_URL") if PRODUCTION else env_secret("DATABASE_URL")
if _database_url:
    DATABASES = {"default": _database_from_url(_database_url)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "db.sqlite3",
            "OPTIONS": _SQLITE_OPTIONS,
            "TEST": {"NAME": VAR_DIR / "test.sqlite3"},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Login lockout (django-axes, apps/accounts/otp/lockout.py): LockoutBackend refuses a username from an
# address after KVMPANEL_LOGIN_FAILURE_LIMIT failures (wrong passwords and wrong second-step codes) until
# KVMPANEL_LOGIN_COOLOFF_MINUTES pass or an administrator unlocks it.
AUTHENTICATION_BACKENDS = [
    "apps.accounts.otp.lockout.LockoutBackend",
    # ModelBackend, whose get_user also loads the user's 2FA state (no extra query per request).
    "apps.accounts.otp.backends.TwoFactorStateBackend",
]
AXES_FAILURE_LIMIT = env_int("KVMPANEL_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("KVMPANEL_LOGIN_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# A lockout ends when its cool-off ends: attempts made during it are refused but do not extend it.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_LOCKOUT_CALLABLE = "apps.accounts.otp.lockout.lockout_response"
AXES_CLIENT_IP_CALLABLE = "apps.accounts.otp.lockout.client_ip"
AXES_DISABLE_ACCESS_LOG = True  # successful logins are in the audit log; axes keeps only the failures
AXES_SENSITIVE_PARAMETERS = ["username", "ip_address", "code", "password_or_code"]
AXES_VERBOSE = False
# Two-factor (apps/accounts/otp): the name authenticator apps show, and django-otp's back-off after a
# wrong code (factor * 2**(failures-1) seconds).
OTP_TOTP_ISSUER = env_str("KVMPANEL_OTP_ISSUER", "kvmpanel")
OTP_TOTP_THROTTLE_FACTOR = env_int("KVMPANEL_OTP_THROTTLE_FACTOR", 1)
# Encrypts secrets the panel reads back, e.g. TOTP seeds (kvmpanel/secrets.py); empty: derived from SECRET_KEY.
KVMPANEL_SECRET_ENCRYPTION_KEY = env_secret("KVMPANEL_SECRET_ENCRYPTION_KEY") or ""
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "vms:list"
LOGOUT_REDIRECT_URL = "login"

# Redis: broker, result backend and channel layer. Development uses a private server on a unix
# socket under var/ (no TCP port, so two checkouts on one machine never collide).
REDIS_URL = _required("REDIS_URL") if PRODUCTION else (env_secret("REDIS_URL") or f"unix://{VAR_DIR}/redis.sock")


def _celery_url(redis_url: str) -> str:
    if redis_url.startswith("unix://"):
        return "redis+socket://" + redis_url.removeprefix("unix://")
    return redis_url


CELERY_BROKER_URL = _celery_url(REDIS_URL)
CELERY_RESULT_BACKEND = _celery_url(REDIS_URL)
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)

# Prefix of the panel's own Redis keys (console tickets and counters).
KVMPANEL_REDIS_NAMESPACE = env_str("KVMPANEL_REDIS_NAMESPACE", "kvmpanel")

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            # redis-py 8 defaults socket_timeout to 5 s, the same as channels-redis's blocking-pop
            # timeout, so an idle consumer's read could time out and crash it; give reads headroom.
            "hosts": [{"address": REDIS_URL, "socket_timeout": 30, "socket_connect_timeout": 5}],
            "prefix": env_str("KVMPANEL_CHANNEL_PREFIX", "kvmpanel"),
        },
    }
}

LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("zh-hans", _("Simplified Chinese"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
# `make` runs collectstatic; in development whitenoise also serves straight from static/.
WHITENOISE_USE_FINDERS = not PRODUCTION

# Cookies are HttpOnly and SameSite=Lax always; Secure whenever the panel is served over HTTPS,
# which production must be (the dev server on 127.0.0.1 is plain HTTP).
HTTPS = env_bool("KVMPANEL_HTTPS", PRODUCTION)
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = env_int("KVMPANEL_SESSION_SECONDS", 12 * 3600)
CSRF_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if HTTPS:
    SECURE_HSTS_SECONDS = env_int("KVMPANEL_HSTS_SECONDS", 31536000)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apps.accounts.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "apps.core.api.exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "kvmpanel API",
    "DESCRIPTION": "Hosts, virtual machines and their lifecycle. Every action is authorized and audited.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    # Swagger UI's files come from the sidecar package: the panel loads nothing from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# Hypervisor connections (kvmpanel/virt/connection.py).
KVMPANEL_LIBVIRT_KEEPALIVE_INTERVAL = env_int("KVMPANEL_LIBVIRT_KEEPALIVE_INTERVAL", 5)
KVMPANEL_LIBVIRT_KEEPALIVE_COUNT = env_int("KVMPANEL_LIBVIRT_KEEPALIVE_COUNT", 3)
KVMPANEL_RECONNECT_MAX_SECONDS = env_int("KVMPANEL_RECONNECT_MAX_SECONDS", 30)
# Inventory listener: events are immediate; this is the full reconcile period.
KVMPANEL_RECONCILE_SECONDS = env_int("KVMPANEL_RECONCILE_SECONDS", 30)
# test:/// hosts are for the test suite and benchmarks only.
KVMPANEL_ALLOW_TEST_DRIVER = env_bool("KVMPANEL_ALLOW_TEST_DRIVER", DEBUG)

# Consoles (apps/console). The proxy listens here; browsers reach it at KVMPANEL_CONSOLE_URL (a
# path such as "/console/ws" means "this origin", for a TLS reverse proxy in front of both).
KVMPANEL_CONSOLE_LISTEN = env_str("KVMPANEL_CONSOLE_LISTEN", "127.0.0.1:6080")
KVMPANEL_CONSOLE_URL = env_str("KVMPANEL_CONSOLE_URL", "ws://127.0.0.1:6080/")
KVMPANEL_CONSOLE_ALLOWED_ORIGINS = env_list(
    "KVMPANEL_CONSOLE_ALLOWED_ORIGINS",
    [*CSRF_TRUSTED_ORIGINS, "http://127.0.0.1:8000", "http://localhost:8000"],
)
KVMPANEL_CONSOLE_TICKET_SECONDS = min(env_int("KVMPANEL_CONSOLE_TICKET_SECONDS", 30), 60)
KVMPANEL_CONSOLE_TICKETS_PER_MINUTE = env_int("KVMPANEL_CONSOLE_TICKETS_PER_MINUTE", 30)
KVMPANEL_CONSOLE_MAX_PER_USER = env_int("KVMPANEL_CONSOLE_MAX_PER_USER", 8)
# QEMU serves at most 32 VNC clients per display by default; more would be cut off after the banner.
KVMPANEL_CONSOLE_MAX_PER_VM = min(env_int("KVMPANEL_CONSOLE_MAX_PER_VM", 8), 32)
KVMPANEL_CONSOLE_IDLE_SECONDS = env_int("KVMPANEL_CONSOLE_IDLE_SECONDS", 3600)
KVMPANEL_CONSOLE_HEARTBEAT_SECONDS = env_int("KVMPANEL_CONSOLE_HEARTBEAT_SECONDS", 20)
KVMPANEL_CONSOLE_RECHECK_SECONDS = env_int("KVMPANEL_CONSOLE_RECHECK_SECONDS", 2)
KVMPANEL_CONSOLE_MAX_MESSAGE_BYTES = env_int("KVMPANEL_CONSOLE_MAX_MESSAGE_BYTES", 1 << 20)

# Jobs (apps/jobs): a running job whose heartbeat is older than this is failed ("the worker stopped").
KVMPANEL_JOB_STALE_SECONDS = env_int("KVMPANEL_JOB_STALE_SECONDS", 60)
# How long a vm.create job in install mode waits for the installer to power the VM off.
KVMPANEL_INSTALL_TIMEOUT_SECONDS = env_int("KVMPANEL_INSTALL_TIMEOUT_SECONDS", 3 * 3600)
# Celery beat runs the reaper, so a job whose worker died is failed and cleaned up even when no other
# job starts (a dead worker on this machine is noticed at the next run; elsewhere by the heartbeat).
CELERY_BEAT_SCHEDULE = {
    "reap-jobs": {"task": "jobs.reap", "schedule": env_int("KVMPANEL_JOB_REAP_SECONDS", 15)},
    # Uploads abandoned mid-way (browser closed) are deleted after KVMPANEL_STORAGE_UPLOAD_IDLE_SECONDS.
    "reap-uploads": {"task": "storage.reap_uploads", "schedule": 300},
}

# Behind a reverse proxy on this machine, audit the client's address from X-Forwarded-For.
KVMPANEL_TRUST_X_FORWARDED_FOR = env_bool("KVMPANEL_TRUST_X_FORWARDED_FOR", False)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("KVMPANEL_LOG_LEVEL", "INFO")},
    # axes logs every login at INFO; its failures and lockouts are WARNING (and audited).
    "loggers": {"django.channels.server": {"level": "WARNING"}, "axes": {"level": "WARNING"}},
}
