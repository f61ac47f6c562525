"""`/account/users/`: the user administration page (needs `user.manage` on "/", else 403).

Thin: every write is a service in `apps.accounts.admin_services`. A generated password is rendered
in the answer to the POST that made it and kept nowhere else (not in the session, not in a URL).
"""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods, require_POST

from apps.accounts import admin_services
from apps.accounts.models import User
from apps.accounts.otp.admin_views import annotate_users
from apps.accounts.permissions import has_privilege
from apps.core.errors import ServiceError


class UserCreateForm(forms.Form):
    username = forms.RegexField(label=gettext_lazy("Username"), regex=r"^[\w.@+-]+\Z", max_length=150)
    email = forms.EmailField(label=gettext_lazy("Email"), required=False)
    password = forms.CharField(
        label=gettext_lazy("Password"),
        required=False,
        widget=forms.PasswordInput,
        help_text=gettext_lazy("Empty: a password is generated and shown once."),
    )


def _require_manager(request: HttpRequest) -> None:
    if not has_privilege(request.user, None, admin_services.MANAGE):
        raise PermissionDenied


def _page(
    request: HttpRequest, form: UserCreateForm, *, password_for: User | None = None, password: str = "", status=200
) -> HttpResponse:
    users = annotate_users(User.objects.prefetch_related("groups").order_by("username"))
    context = {"form": form, "users": users, "password_for": password_for, "password": password}
    response = render(request, "accounts/users.html", context, status=status)
    if password:
        response["Cache-Control"] = "no-store"
    return response


@login_required
@require_http_methods(["GET", "POST"])
def user_list(request: HttpRequest) -> HttpResponse:
    _require_manager(request)
    if request.method == "GET":
        return _page(request, UserCreateForm())
    form = UserCreateForm(request.POST)
    if not form.is_valid():
        return _page(request, form, status=400)
    try:
        user, generated = admin_services.create_user(
            actor=request.user,
            username=form.cleaned_data["username"],
            email=form.cleaned_data["email"],
            password=form.cleaned_data["password"] or None,
        )
    except ServiceError as error:
        form.add_error(None, error.message)
        return _page(request, form, status=error.status)
    messages.success(request, _("User %(name)s created.") % {"name": user.username})
    return _page(request, UserCreateForm(), password_for=user if generated else None, password=generated or "")


def _set_active(request: HttpRequest, user_id: int, *, active: bool) -> HttpResponse:
    _require_manager(request)
    user = get_object_or_404(User, pk=user_id)
    try:
        admin_services.set_user_active(user, actor=request.user, active=active)
    except ServiceError as error:
        messages.error(request, error.message)
    else:
        text = _("%(name)s enabled.") if active else _("%(name)s disabled: signed out and tokens refused.")
        messages.success(request, text % {"name": user.username})
    return redirect("account-users")


@login_required
@require_POST
def user_disable(request: HttpRequest, user_id: int) -> HttpResponse:
    return _set_active(request, user_id, active=False)


@login_required
@require_POST
def user_enable(request: HttpRequest, user_id: int) -> HttpResponse:
    return _set_active(request, user_id, active=True)


@login_required
@require_POST
def user_reset_password(request: HttpRequest, user_id: int) -> HttpResponse:
    """Generate a new password for the user and show it once."""
    _require_manager(request)
    user = get_object_or_404(User, pk=user_id)
    try:
        generated = admin_services.reset_password(user, actor=request.user)
    except ServiceError as error:
        messages.error(request, error.message)
        return redirect("account-users")
    return _page(request, UserCreateForm(), password_for=user, password=generated)
