"""Login in two steps, and the user's own 2FA page (`/account/2fa/`).

Step one (`/login/`) checks the password. A user with an authenticator is not logged in yet: the
session only remembers who passed it (for PENDING_SECONDS) and step two (`/login/verify/`) asks for a
code from the app or a recovery code; then the session is logged in and marked verified
(`django_otp.login`). A user without one is logged in at once, and sent to enrollment if an
administrator requires 2FA of them (TwoFactorMiddleware keeps them there). Wrong codes count toward the
lockout like wrong passwords (lockout.py). Thin: the writes are in services.py.
"""

import time

import segno
from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model, update_session_auth_hash
from django.contrib.auth import login as auth_login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import PasswordChangeForm
from django.contrib.auth.views import LoginView
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render, resolve_url
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST
from django_otp import login as otp_login

from apps.accounts.otp import services
from apps.accounts.otp.lockout import PENDING_SESSION_KEY, count_failed_code, is_locked_out, lockout_response
from apps.core.errors import ServiceError

# How long the password step is remembered while the code is asked for.
PENDING_SECONDS = 300


class CodeForm(forms.Form):
    code = forms.CharField(
        label=gettext_lazy("Code"),
        max_length=32,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "autofocus": True, "spellcheck": "false"}),
        help_text=gettext_lazy("The 6 digits your authenticator app shows, or one of your recovery codes."),
    )


class DisableForm(forms.Form):
    password_or_code = forms.CharField(
        label=gettext_lazy("Your password or a current code"), max_length=128, widget=forms.PasswordInput
    )


def _safe_next(request: HttpRequest, candidate: str | None) -> str:
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return resolve_url(settings.LOGIN_REDIRECT_URL)


class PasswordStepView(LoginView):
    """Django's LoginView (axes counts its failures), but a user with an authenticator is not logged in yet."""

    redirect_authenticated_user = True

    def form_valid(self, form) -> HttpResponse:
        user = form.get_user()
        state = services.two_factor_state(user)
        if state.enabled:
            self.request.session[PENDING_SESSION_KEY] = {
                "user": user.pk,
                "backend": user.backend,
                "next": self.get_redirect_url(),
                "at": time.time(),
            }
            return redirect("login-verify")
        auth_login(self.request, user)
        if state.required:
            messages.info(self.request, _("An administrator requires two-factor authentication: set it up now."))
            return redirect("account-2fa")
        return redirect(self.get_success_url())


def _pending_user(request: HttpRequest):
    """(user, backend, next) of the session's passed password step, or of its logged-in but unverified user."""
    pending = request.session.get(PENDING_SESSION_KEY)
    if pending and time.time() - pending.get("at", 0) < PENDING_SECONDS:
        user = get_user_model().objects.filter(pk=pending["user"], is_active=True).first()
        if user is not None:
            return user, pending["backend"], pending.get("next")
    if request.user.is_authenticated and not request.user.is_verified():
        return request.user, None, request.GET.get("next") or request.POST.get("next")
    return None, None, None


@never_cache
@require_http_methods(["GET", "POST"])
def code_step(request: HttpRequest) -> HttpResponse:
    """`/login/verify/`: the second step, for whoever passed the password step (else back to /login/)."""
    user, backend, next_url = _pending_user(request)
    if user is None:
        request.session.pop(PENDING_SESSION_KEY, None)
        return redirect("login")
    if services.confirmed_totp_device(user) is None:
        # No app (reset by an administrator since the password step): nothing to ask. Enrollment follows if
        # 2FA is required of them (TwoFactorMiddleware).
        if backend is not None:
            auth_login(request, user, backend=backend)
        request.session.pop(PENDING_SESSION_KEY, None)
        return redirect(_safe_next(request, next_url))
    form = CodeForm(request.POST or None)
    context = {"form": form, "username": user.get_username(), "next": next_url or ""}
    if request.method == "GET" or not form.is_valid():
        return render(
            request, "registration/login_verify.html", context, status=200 if request.method == "GET" else 400
        )
    if is_locked_out(request, user.get_username()):
        return lockout_response(request, credentials={"username": user.get_username()})
    device, throttled = services.verify_second_factor(user, form.cleaned_data["code"])
    if device is None:
        if throttled:
            form.add_error("code", _("Too many wrong codes in a row: wait a few seconds, then try again."))
        else:
            count_failed_code(request, user.get_username())
            form.add_error("code", _("That code is not right, or was already used."))
        return render(request, "registration/login_verify.html", context, status=400)
    request.session.pop(PENDING_SESSION_KEY, None)
    auth_login(request, user, backend=backend or settings.AUTHENTICATION_BACKENDS[-1])
    otp_login(request, device)
    if isinstance(device, services.RecoveryCodeDevice):
        messages.warning(
            request,
            _("You used a recovery code; %(count)d left. Make new ones on the two-factor page if you run low.")
            % {"count": device.remaining},
        )
    return redirect(_safe_next(request, next_url))


def _qr_svg(url: str) -> str:
    # segno draws the QR code here as inline SVG: no image request, no script, nothing from elsewhere.
    return mark_safe(segno.make(url, error="m").svg_inline(scale=4, border=4, light="#fff"))  # noqa: S308


def _page(request: HttpRequest, *, recovery_codes: list[str] | None = None, status: int = 200, **extra) -> HttpResponse:
    user = request.user
    state = services.two_factor_state(user)
    device = services.confirmed_totp_device(user)
    pending = None if device else services.pending_totp_device(user)
    recovery = services.RecoveryCodeDevice.objects.filter(user=user).first()
    context = {
        "state": state,
        "device": device,
        "verified": user.is_verified(),
        "pending": pending,
        "qr_svg": _qr_svg(pending.config_url) if pending else "",
        "secret": pending.base32_secret if pending else "",
        "recovery_codes": recovery_codes or [],
        "recovery_remaining": recovery.remaining if recovery else 0,
        "code_form": extra.pop("code_form", None) or CodeForm(),
        "disable_form": extra.pop("disable_form", None) or DisableForm(),
        **extra,
    }
    response = render(request, "accounts/two_factor.html", context, status=status)
    # The secret and the recovery codes must not stay in a cache.
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_http_methods(["GET"])
def two_factor_page(request: HttpRequest) -> HttpResponse:
    return _page(request)


@login_required
@require_POST
def two_factor_setup(request: HttpRequest) -> HttpResponse:
    try:
        services.begin_enrollment(actor=request.user)
    except ServiceError as error:
        messages.error(request, error.message)
    return redirect("account-2fa")


@login_required
@require_POST
def two_factor_confirm(request: HttpRequest) -> HttpResponse:
    form = CodeForm(request.POST)
    if not form.is_valid():
        return _page(request, code_form=form, status=400)
    try:
        device, codes = services.confirm_enrollment(actor=request.user, code=form.cleaned_data["code"])
    except ServiceError as error:
        form.add_error("code", error.message)
        return _page(request, code_form=form, status=error.status)
    otp_login(request, device)
    messages.success(request, _("Two-factor authentication is on."))
    return _page(request, recovery_codes=codes)


@login_required
@require_POST
def two_factor_recovery_codes(request: HttpRequest) -> HttpResponse:
    try:
        codes = services.regenerate_recovery_codes(actor=request.user)
    except ServiceError as error:
        messages.error(request, error.message)
        return redirect("account-2fa")
    messages.success(request, _("New recovery codes made; the old ones no longer work."))
    return _page(request, recovery_codes=codes)


@login_required
@require_POST
def two_factor_disable(request: HttpRequest) -> HttpResponse:
    form = DisableForm(request.POST)
    if not form.is_valid():
        return _page(request, disable_form=form, status=400)
    try:
        services.disable_two_factor(actor=request.user, password_or_code=form.cleaned_data["password_or_code"])
    except ServiceError as error:
        form.add_error(None, error.message)
        return _page(request, disable_form=form, status=error.status)
    messages.success(request, _("Two-factor authentication is off."))
    return redirect("account-2fa")


@login_required
@require_http_methods(["GET", "POST"])
def password_change(request: HttpRequest) -> HttpResponse:
    """`/account/password/`: one's own password. Django's form checks the old one and runs the validators
    (their messages show under the field); the session stays signed in and verified."""
    form = PasswordChangeForm(request.user, request.POST or None)
    if request.method == "GET":
        return render(request, "accounts/password.html", {"form": form})
    if not form.is_valid():
        return render(request, "accounts/password.html", {"form": form}, status=400)
    try:
        services.change_own_password(actor=request.user, new_password=form.cleaned_data["new_password1"])
    except ServiceError as error:
        form.add_error("new_password1", error.message)
        return render(request, "accounts/password.html", {"form": form}, status=error.status)
    update_session_auth_hash(request, request.user)
    messages.success(request, _("Password changed."))
    return redirect("account-password")
