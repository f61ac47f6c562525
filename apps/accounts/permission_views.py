"""Who may do what on an object, and why: `/account/effective/` and the Permissions tab of VMs, hosts and projects.

`/account/effective/?user=alice&scope=/vms/3` explains one user's access to one object
(apps/accounts/explain.py): one's own for everyone signed in, anyone's for holders of `user.manage` on
that scope or above it. The Permissions tab (`/vms/<id>/permissions/`, `/hosts/<id>/permissions/`,
`/account/projects/<id>/permissions/`) lists the grants on the object and those inherited from above,
and every user's effective access with where it comes from; it adds and revokes grants through the
audited services (`admin_services.delegate_grant` / `revoke_grant`, delegation without escalation).
It is for holders of `user.manage` on the object: invisible objects are 404, visible ones 403.
"""

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET

from apps.accounts import admin_services
from apps.accounts.explain import (
    explanation_for,
    scope_for_request,
    sees,
)
from apps.accounts.models import Project, User
from apps.accounts.permissions import has_privilege
from apps.core.errors import ServiceError
from apps.hosts.models import Host
from apps.vms.models import VirtualMachine

# How many VMs the object picker of the effective page offers (the scope field takes any other by hand).
PICKER_VMS = 300


class EffectiveForm(forms.Form):
    user = forms.CharField(label=gettext_lazy("User"), max_length=150)
    scope = forms.CharField(
        label=gettext_lazy("Object"), max_length=100, initial="/", help_text="/, /hosts/<id>, /projects/<id>, /vms/<id>"
    )


def _scope_choices(user) -> list[tuple[str, str]]:
    """(scope, label) of what the user can see, for the object picker."""
    choices = [("/", _("/ (everything)"))]
    hosts = Host.objects.restrict(user, "host.view")
    choices += [(host.scope, _("host %(name)s") % {"name": host.name}) for host in hosts]
    choices += [
        (project.scope, _("project %(name)s") % {"name": project.name})
        for project in Project.objects.all()
        if sees(user, project)
    ]
    vms = VirtualMachine.objects.restrict(user, "vm.view").only("pk", "name")[:PICKER_VMS]
    choices += [(vm.scope, _("VM %(name)s") % {"name": vm.name}) for vm in vms]
    return choices


@login_required
@require_GET
def effective(request: HttpRequest) -> HttpResponse:
    """Pick a user and an object; see each privilege allowed or not, with the grant that decided."""
    asked = "user" in request.GET or "scope" in request.GET
    form = EffectiveForm(request.GET if asked else None, initial={"user": request.user.get_username(), "scope": "/"})
    context = {
        "form": form,
        "scope_choices": _scope_choices(request.user),
        "usernames": (
            list(User.objects.order_by("username").values_list("username", flat=True))
            if has_privilege(request.user, None, admin_services.MANAGE)
            else []
        ),
    }
    status = 200
    if asked and form.is_valid():
        try:
            obj = scope_for_request(request.user, form.cleaned_data["scope"])
            user, explanation = explanation_for(request.user, obj, username=form.cleaned_data["user"])
        except ServiceError as error:
            if error.status == 403:
                raise PermissionDenied from error
            form.add_error("scope", error.message)
            status = error.status
        else:
            context.update(subject=user, obj=obj, explanation=explanation)
    elif asked:
        status = 400
    return render(request, "accounts/effective.html", context, status=status)
