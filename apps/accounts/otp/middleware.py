"""Hold a session that still owes its second factor to the 2FA pages.

A session must be verified (django-otp's OTPMiddleware finds the device it was verified with) when its
user has an authenticator or an administrator requires 2FA of them. Until then pages redirect to the
code step (or to enrollment, for a user who has no device yet), API calls made with the session answer
403 with the reason, and WebSockets treat the session's user as anonymous (consumers then refuse).
API tokens are a separate credential and are not held (docs/permissions.md, "Two-factor").
"""

from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest, JsonResponse
from django.shortcuts import redirect
from django.utils.translation import gettext as _
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.models import Device

from apps.accounts.otp.services import request_two_factor_state

# Pages an unverified session may still reach: the login steps, enrollment and the language switch.
OPEN_TO_UNVERIFIED = {
    "login",
    "login-verify",
    "logout",
    "account-2fa",
    "account-2fa-setup",
    "account-2fa-confirm",
    "set-language",
    "health",
}


def _uses_api_token(request: HttpRequest) -> bool:
    # Only the token scheme: any other Authorization header would fall back to the session in DRF.
    return request.headers.get("Authorization", "").lower().startswith("token ")


class TwoFactorMiddleware:
    """After django_otp.middleware.OTPMiddleware (it sets `request.user.is_verified`)."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs):
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated or user.is_verified():
            return None
        if request.path.startswith("/api/") and _uses_api_token(request):
            return None
        state = request_two_factor_state(user)
        if not (state.required or state.enabled):
            return None
        if request.resolver_match and request.resolver_match.view_name in OPEN_TO_UNVERIFIED:
            return None
        if state.enabled:
            reason = _("This session has not given its second factor yet: enter a code from your authenticator app.")
        else:
            reason = _("An administrator requires two-factor authentication: set it up at /account/2fa/ first.")
        if request.path.startswith("/api/"):
            return JsonResponse({"detail": reason}, status=403)
        return redirect("login-verify" if state.enabled else "account-2fa")


def _session_unverified(scope) -> bool:
    user = scope.get("user")
    if user is None or not user.is_authenticated:
        return False
    session = scope.get("session")
    persistent_id = session.get(DEVICE_ID_SESSION_KEY) if session is not None else None
    if persistent_id:
        device = Device.from_persistent_id(persistent_id)
        if device is not None and device.user_id == user.pk and device.confirmed:
            return False
    state = request_two_factor_state(user)
    return state.required or state.enabled


class TwoFactorWebsocketMiddleware(BaseMiddleware):
    """Inside channels' AuthMiddlewareStack: a session that owes its second factor is anonymous here."""

    async def __call__(self, scope, receive, send):
        if scope.get("type") == "websocket" and await database_sync_to_async(_session_unverified)(scope):
            scope = dict(scope, user=AnonymousUser())
        return await super().__call__(scope, receive, send)
