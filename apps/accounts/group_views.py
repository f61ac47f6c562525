"""`/account/groups/` and `/account/grants/`: groups with their members, and grants with delegation.

Groups need `user.manage` on "/" (403 otherwise). The grants page is for everyone signed in: it lists
the grants they hold or made (all of them for managers), and its form refuses a grant that would give
more than the user holds on that scope (`admin_services.delegate_grant`).
"""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods, require_POST

from apps.accounts import admin_services
from apps.accounts.models import Grant, Role, User
from apps.accounts.otp.admin_views import annotate_groups
from apps.accounts.permissions import has_privilege
from apps.core.errors import ServiceError


def _is_manager(user) -> bool:
    return has_privilege(user, None, admin_services.MANAGE)


class GroupForm(forms.Form):
    name = forms.CharField(label=gettext_lazy("Name"), max_length=150)
    members = forms.ModelMultipleChoiceField(
        label=gettext_lazy("Members"),
        queryset=User.objects.order_by("username"),
        widget=forms.CheckboxSelectMultiple,
        required=False,
    )


def _groups_page(request: HttpRequest, form: GroupForm, *, status: int = 200) -> HttpResponse:
    groups = annotate_groups(Group.objects.prefetch_related("user_set").order_by("name"))
    return render(request, "accounts/groups.html", {"form": form, "groups": groups}, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def group_list(request: HttpRequest) -> HttpResponse:
    if not _is_manager(request.user):
        raise PermissionDenied
    if request.method == "GET":
        return _groups_page(request, GroupForm())
    form = GroupForm(request.POST)
    if not form.is_valid():
        return _groups_page(request, form, status=400)
    try:
        group = admin_services.create_group(
            actor=request.user,
            name=form.cleaned_data["name"],
            members=[user.pk for user in form.cleaned_data["members"]],
        )
    except ServiceError as error:
        form.add_error(None, error.message)
        return _groups_page(request, form, status=error.status)
    messages.success(request, _("Group %(name)s created.") % {"name": group.name})
    return redirect("account-groups")


@login_required
@require_POST
def group_delete(request: HttpRequest, group_id: int) -> HttpResponse:
    if not _is_manager(request.user):
        raise PermissionDenied
    group = get_object_or_404(Group, pk=group_id)
    admin_services.delete_group(group, actor=request.user)
    messages.success(request, _("Group %(name)s deleted.") % {"name": group.name})
    return redirect("account-groups")


class GrantForm(forms.Form):
    role = forms.ModelChoiceField(label=gettext_lazy("Role"), queryset=Role.objects.all())
    scope = forms.CharField(
        label=gettext_lazy("Scope"), max_length=100, initial="/", help_text="/, /hosts/<id>, /projects/<id>, /vms/<id>"
    )
    username = forms.CharField(label=gettext_lazy("User"), max_length=150, required=False)
    group = forms.CharField(label=gettext_lazy("Group"), max_length=150, required=False)
    propagate = forms.BooleanField(label=gettext_lazy("Also applies below this scope"), required=False, initial=True)


def _visible_grants(user):
    grants = Grant.objects.select_related("user", "group", "role").order_by("scope", "pk")
    return grants if _is_manager(user) else grants.filter(Q(user=user) | Q(created_by=user))


def _grants_page(request: HttpRequest, form: GrantForm, *, status: int = 200) -> HttpResponse:
    context = {"form": form, "grants": _visible_grants(request.user)}
    return render(request, "accounts/grants.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def grant_list(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return _grants_page(request, GrantForm())
    form = GrantForm(request.POST)
    if not form.is_valid():
        return _grants_page(request, form, status=400)
    data = form.cleaned_data
    try:
        # Delegation is decided first, so the form does not tell who exists to someone who may not grant.
        if not admin_services.may_delegate(request.user, data["role"], data["scope"]):
            raise ServiceError(_("You may only grant roles whose privileges you hold on that scope."), status=403)
        user = User.objects.filter(username=data["username"]).first() if data["username"] else None
        group = Group.objects.filter(name=data["group"]).first() if data["group"] else None
        if (data["username"] and user is None) or (data["group"] and group is None):
            raise ServiceError(_("No such user or group."), status=400)
        grant = admin_services.delegate_grant(
            actor=request.user,
            role=data["role"],
            scope=data["scope"],
            user=user,
            group=group,
            propagate=data["propagate"],
        )
    except ServiceError as error:
        form.add_error(None, error.message)
        return _grants_page(request, form, status=error.status)
    messages.success(request, _("Granted: %(grant)s") % {"grant": grant})
    return redirect("account-grants")


@login_required
@require_POST
def grant_revoke(request: HttpRequest, grant_id: int) -> HttpResponse:
    grant = get_object_or_404(_visible_grants(request.user), pk=grant_id)
    try:
        admin_services.revoke_grant(grant, actor=request.user)
    except ServiceError as error:
        if error.status == 403:
            raise PermissionDenied from error
        messages.error(request, error.message)
    else:
        messages.success(request, _("Grant revoked."))
    return redirect("account-grants")
