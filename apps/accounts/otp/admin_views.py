"""The administrator's 2FA and lockout buttons on `/account/users/` and `/account/groups/`.

`user.manage` on "/" (403 otherwise, as for the rest of those pages). Thin: services.py does the writes.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from apps.accounts.admin_services import MANAGE
from apps.accounts.models import User
from apps.accounts.otp import services
from apps.accounts.otp.lockout import locked_out_usernames
from apps.accounts.otp.models import TotpDevice, TwoFactorRequirement
from apps.accounts.permissions import has_privilege
from apps.core.errors import ServiceError


def annotate_users(users) -> list:
    """Set `two_factor_enabled`, `two_factor_forced` (own requirement), `two_factor_required` (own or a
    group's) and `locked_out` on each user, in four queries for the whole list (the users page)."""
    users = list(users)
    ids = [user.pk for user in users]
    forced = set(TwoFactorRequirement.objects.filter(user_id__in=ids).values_list("user_id", flat=True))
    by_group = set(
        User.objects.filter(pk__in=ids, groups__two_factor_requirement__isnull=False).values_list("pk", flat=True)
    )
    enabled = set(TotpDevice.objects.filter(user_id__in=ids, confirmed=True).values_list("user_id", flat=True))
    locked = locked_out_usernames(user.username for user in users)
    for user in users:
        user.two_factor_enabled = user.pk in enabled
        user.two_factor_forced = user.pk in forced
        user.two_factor_required = user.pk in forced or user.pk in by_group
        user.locked_out = user.username in locked
    return users


def annotate_groups(groups) -> list:
    groups = list(groups)
    required = set(
        TwoFactorRequirement.objects.filter(Q(group__in=[group.pk for group in groups])).values_list(
            "group_id", flat=True
        )
    )
    for group in groups:
        group.two_factor_required = group.pk in required
    return groups


def _require_manager(request: HttpRequest) -> None:
    if not has_privilege(request.user, None, MANAGE):
        raise PermissionDenied


def _run(request: HttpRequest, action, success: str, back: str) -> HttpResponse:
    try:
        action()
    except ServiceError as error:
        if error.status == 403:
            raise PermissionDenied(error.message) from error
        messages.error(request, error.message)
    else:
        messages.success(request, success)
    return redirect(back)


def _required_toggle(request: HttpRequest, target, setter, texts: tuple[str, str], back: str) -> HttpResponse:
    """Require 2FA (`required=1` in the form) or stop requiring it (`required=0`)."""
    required = request.POST.get("required") == "1"
    text = texts[0] if required else texts[1]
    return _run(
        request,
        lambda: setter(target, actor=request.user, required=required),
        text % {"name": str(target)},
        back,
    )


@login_required
@require_POST
def user_two_factor(request: HttpRequest, user_id: int) -> HttpResponse:
    _require_manager(request)
    texts = (_("%(name)s must now use two-factor authentication."), _("2FA no longer required of %(name)s."))
    user = get_object_or_404(User, pk=user_id)
    return _required_toggle(request, user, services.set_user_two_factor_required, texts, "account-users")


@login_required
@require_POST
def user_reset_two_factor(request: HttpRequest, user_id: int) -> HttpResponse:
    _require_manager(request)
    user = get_object_or_404(User, pk=user_id)
    return _run(
        request,
        lambda: services.reset_two_factor(user, actor=request.user),
        _("Two-factor authentication of %(name)s reset: they set it up again at their next login if required.")
        % {"name": user.username},
        "account-users",
    )


@login_required
@require_POST
def user_unlock(request: HttpRequest, user_id: int) -> HttpResponse:
    _require_manager(request)
    user = get_object_or_404(User, pk=user_id)
    return _run(
        request,
        lambda: services.unlock_user(user, actor=request.user),
        _("%(name)s unlocked: failed logins forgotten.") % {"name": user.username},
        "account-users",
    )


@login_required
@require_POST
def group_two_factor(request: HttpRequest, group_id: int) -> HttpResponse:
    _require_manager(request)
    texts = (
        _("Members of %(name)s must now use two-factor authentication."),
        _("2FA no longer required of the members of %(name)s."),
    )
    group = get_object_or_404(Group, pk=group_id)
    return _required_toggle(request, group, services.set_group_two_factor_required, texts, "account-groups")
