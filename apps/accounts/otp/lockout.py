"""Login throttling and lockout, on django-axes (database handler).

After AXES_FAILURE_LIMIT failures for one username from one address (password or second-step code)
within AXES_COOLOFF_TIME, that username is refused from that address until the cool-off ends or an
administrator unlocks it (`services.unlock_user`). Every lockout is audited. A wrong code on the second
step counts like a wrong password (`count_failed_code`).
"""

from datetime import timedelta

from axes.backends import AxesStandaloneBackend
from axes.handlers.proxy import AxesProxyHandler
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.signals import user_login_failed
from django.db.models import Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.audit.choices import AuditResult
from apps.audit.services import record_event
from apps.core.http import client_address

PENDING_SESSION_KEY = "two_factor_pending"


class LockoutBackend(AxesStandaloneBackend):
    """axes' gate in front of ModelBackend, for authentication that comes with a request.

    Every network login path (the panel's login view, the admin's) passes `request`. Calls without one
    come from code on this machine (Django's test `Client.login`, a shell): there is no client to lock
    out, so they pass through instead of failing as axes' own backend does.
    """

    def authenticate(self, request: HttpRequest | None, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


def lockout_message() -> str:
    minutes = int(cool_off().total_seconds() // 60)
    return _(
        "Too many failed attempts for this username from your address: try again in %(minutes)d minutes, "
        "or ask an administrator to unlock the account."
    ) % {"minutes": minutes}


def cool_off() -> timedelta:
    return settings.AXES_COOLOFF_TIME


def lockout_response(request: HttpRequest, original_response=None, credentials=None) -> HttpResponse:
    """AXES_LOCKOUT_CALLABLE: the login page again, with the reason, 429 (never a bare error page)."""
    request.session.pop(PENDING_SESSION_KEY, None)
    form = AuthenticationForm(request, initial={"username": (credentials or {}).get("username", "")})
    context = {"form": form, "lockout": lockout_message(), "next": ""}
    return render(request, "registration/login.html", context, status=429)


def is_locked_out(request: HttpRequest, username: str) -> bool:
    return not AxesProxyHandler.is_allowed(request, {"username": username})


def count_failed_code(request: HttpRequest, username: str) -> None:
    """A wrong second-step code counts as a failed login (axes listens to `user_login_failed`)."""
    user_login_failed.send(sender=__name__, credentials={"username": username}, request=request)


def audit_lockout(sender, request=None, username: str | None = None, ip_address: str | None = None, **kwargs):
    """Receiver of axes' `user_locked_out`: the lockout itself and each attempt refused during it."""
    user = get_user_model().objects.filter(username=username).first() if username else None
    failures = getattr(request, "axes_failures_since_start", None)
    record_event(
        actor=None,
        verb="user.lockout",
        target=user,
        result=AuditResult.REFUSED,
        message=_("Login locked out for %(username)s from %(address)s.")
        % {"username": username, "address": ip_address},
        detail={"username": username, "ip_address": ip_address, "failures": failures, "refused_attempt": not failures},
        client_address=ip_address,
    )


def locked_out_usernames(usernames=None) -> set[str]:
    """Usernames locked out now from at least one address (one query; `usernames` narrows it)."""
    attempts = AccessAttempt.objects.filter(attempt_time__gte=timezone.now() - cool_off())
    if usernames is not None:
        attempts = attempts.filter(username__in=list(usernames))
    totals = attempts.values("username", "ip_address").annotate(total=Sum("failures_since_start"))
    return {row["username"] for row in totals if row["total"] >= settings.AXES_FAILURE_LIMIT}


def client_ip(request: HttpRequest) -> str | None:
    """AXES_CLIENT_IP_CALLABLE: the same client address the audit log records."""
    return client_address(request)
