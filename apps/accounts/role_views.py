"""`/account/roles/`: roles and their privileges, with a privilege picker for custom roles.

Everyone signed in may read the roles (to know what they can delegate); creating and deleting a
custom role needs `user.manage` on "/" (403 otherwise). Built-in roles are read-only.
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
from apps.accounts.models import Role
from apps.accounts.permissions import has_privilege
from apps.accounts.privileges import PRIVILEGES
from apps.core.errors import ServiceError


class RoleForm(forms.Form):
    name = forms.CharField(label=gettext_lazy("Name"), max_length=64)
    description = forms.CharField(label=gettext_lazy("Description"), max_length=200, required=False)
    privileges = forms.MultipleChoiceField(
        label=gettext_lazy("Privileges"),
        widget=forms.CheckboxSelectMultiple,
        choices=[(name, f"{name} — {description}") for name, description in PRIVILEGES.items()],
    )


def _page(request: HttpRequest, form: RoleForm, *, status: int = 200) -> HttpResponse:
    manager = has_privilege(request.user, None, admin_services.MANAGE)
    context = {"form": form, "roles": Role.objects.all(), "manager": manager}
    return render(request, "accounts/roles.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def role_list(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return _page(request, RoleForm())
    if not has_privilege(request.user, None, admin_services.MANAGE):
        raise PermissionDenied
    form = RoleForm(request.POST)
    if not form.is_valid():
        return _page(request, form, status=400)
    try:
        role = admin_services.create_role(actor=request.user, **form.cleaned_data)
    except ServiceError as error:
        form.add_error(None, error.message)
        return _page(request, form, status=error.status)
    messages.success(request, _("Role %(name)s created.") % {"name": role.name})
    return redirect("account-roles")


@login_required
@require_POST
def role_delete(request: HttpRequest, role_id: int) -> HttpResponse:
    if not has_privilege(request.user, None, admin_services.MANAGE):
        raise PermissionDenied
    role = get_object_or_404(Role, pk=role_id)
    try:
        admin_services.delete_role(role, actor=request.user)
    except ServiceError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, _("Role %(name)s deleted.") % {"name": role.name})
    return redirect("account-roles")
