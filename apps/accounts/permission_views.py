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
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.db.models import Model, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from apps.accounts import admin_services
from apps.accounts.admin_services import MANAGE
from apps.accounts.explain import (
    explain,
    explanation_for,
    manages_access,
    scope_for_request,
    scope_text,
    sees,
)
from apps.accounts.models import Grant, Project, Role, User
from apps.accounts.permissions import ROOT, get_object_or_deny, has_privilege, parse_scope, scope_chain
from apps.accounts.privileges import PRIVILEGES
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


# ---- the Permissions tab ----

# Scope kind -> (the object's model, where its page is, the tab's URL names).
TABS = {
    "vms": ("vms:detail", "vm-permissions"),
    "hosts": ("hosts:detail", "host-permissions"),
    "projects": ("account-project", "project-permissions"),
}


def _tab_object(request: HttpRequest, kind: str, object_id: int) -> Model:
    """The object whose access is managed: 404 when the user cannot see it, 403 without user.manage on it."""
    user = request.user
    if kind == "vms":
        return get_object_or_deny(VirtualMachine.objects.select_related("host", "project"), user, object_id, MANAGE)
    if kind == "hosts":
        return get_object_or_deny(Host.objects.all(), user, object_id, MANAGE)
    project = get_object_or_404(Project, pk=object_id)
    if not manages_access(user, project):
        if not sees(user, project):
            raise Http404
        raise PermissionDenied
    return project


class TabGrantForm(forms.Form):
    role = forms.ModelChoiceField(label=gettext_lazy("Role"), queryset=Role.objects.none())
    user = forms.ModelChoiceField(
        label=gettext_lazy("User"), queryset=User.objects.order_by("username"), required=False
    )
    group = forms.ModelChoiceField(label=gettext_lazy("Group"), queryset=Group.objects.order_by("name"), required=False)
    propagate = forms.BooleanField(label=gettext_lazy("Also applies below this scope"), required=False, initial=True)

    def __init__(self, *args, actor, scope: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # The role picker offers only what the actor may hand out on this scope (delegation without escalation).
        delegable = [role.pk for role in Role.objects.all() if admin_services.may_delegate(actor, role, scope)]
        self.fields["role"].queryset = Role.objects.filter(pk__in=delegable)

    def clean(self) -> dict:
        data = super().clean()
        if bool(data.get("user")) == bool(data.get("group")):
            raise forms.ValidationError(_("Grant to a user or to a group, not both."))
        return data


def _where_managed(scope: str) -> str | None:
    """The page on which a grant on `scope` is managed: its object's Permissions tab, or the grants page for "/"."""
    kind, object_id = parse_scope(scope)
    if kind == ROOT:
        return reverse("account-grants")
    return reverse(TABS[kind][1], args=[object_id])


def _access_rows(obj: Model) -> list[dict]:
    """Everyone with any access to `obj`, what they may do and where it comes from (explain.py per user)."""
    chain = [scope_text(key) for key in scope_chain(obj)]
    grants = Grant.objects.filter(scope__in=chain)
    user_ids = set(grants.filter(user__isnull=False).values_list("user_id", flat=True))
    group_ids = grants.filter(group__isnull=False).values_list("group_id", flat=True)
    candidates = User.objects.filter(
        Q(pk__in=user_ids) | Q(groups__in=group_ids) | Q(is_superuser=True), is_active=True
    ).distinct()
    rows = []
    for user in candidates.order_by("username"):
        explanation = explain(user, obj)
        allowed = [name for name in PRIVILEGES if explanation.privileges[name].allowed]
        if allowed:
            rows.append({"user": user, "explanation": explanation, "allowed": allowed})
    return rows


def _grant_rows(grants, actor, scope: str) -> list[dict]:
    return [
        {
            "grant": grant,
            "revocable": grant.scope == scope and admin_services.may_delegate(actor, grant.role, scope),
            "managed_at": _where_managed(grant.scope),
        }
        for grant in grants
    ]


def _tab_page(request: HttpRequest, kind: str, obj: Model, form: TabGrantForm, *, status: int = 200) -> HttpResponse:
    scope = scope_text(scope_chain(obj)[0])
    chain = [scope_text(key) for key in scope_chain(obj)]
    grants = Grant.objects.filter(scope__in=chain).select_related("user", "group", "role")
    # Deepest first, as the gate reads them; an ancestor's grant shows only when it reaches this object.
    order = {s: i for i, s in enumerate(chain)}
    grants = sorted(grants, key=lambda g: (order[g.scope], g.role.name, g.pk))
    here = [g for g in grants if g.scope == scope]
    inherited = [g for g in grants if g.scope != scope and g.propagate]
    detail_url, tab_name = TABS[kind]
    context = {
        "obj": obj,
        "kind": kind,
        "scope": scope,
        "chain": chain,
        "detail_url": reverse(detail_url, args=[obj.pk]),
        "grant_url": reverse(f"{tab_name}-grant", args=[obj.pk]),
        "revoke_url_name": f"{tab_name}-revoke",
        "grant_tables": [
            (_("Grants on this object"), _grant_rows(here, request.user, scope), "grants-here"),
            (_("Inherited from above"), _grant_rows(inherited, request.user, scope), "grants-inherited"),
        ],
        "access": _access_rows(obj),
        "form": form,
    }
    return render(request, "accounts/permissions.html", context, status=status)


@login_required
@require_GET
def permissions_tab(request: HttpRequest, kind: str, object_id: int) -> HttpResponse:
    obj = _tab_object(request, kind, object_id)
    return _tab_page(request, kind, obj, TabGrantForm(actor=request.user, scope=obj.scope))


@login_required
@require_POST
def permissions_grant(request: HttpRequest, kind: str, object_id: int) -> HttpResponse:
    obj = _tab_object(request, kind, object_id)
    form = TabGrantForm(request.POST, actor=request.user, scope=obj.scope)
    if not form.is_valid():
        return _tab_page(request, kind, obj, form, status=400)
    data = form.cleaned_data
    try:
        grant = admin_services.delegate_grant(
            actor=request.user,
            role=data["role"],
            scope=obj.scope,
            user=data["user"],
            group=data["group"],
            propagate=data["propagate"],
        )
    except ServiceError as error:
        if error.status == 403:
            raise PermissionDenied from error
        form.add_error(None, error.message)
        return _tab_page(request, kind, obj, form, status=error.status)
    messages.success(request, _("Granted: %(grant)s") % {"grant": grant})
    return redirect(TABS[kind][1], object_id=obj.pk)


@login_required
@require_POST
def permissions_revoke(request: HttpRequest, kind: str, object_id: int, grant_id: int) -> HttpResponse:
    obj = _tab_object(request, kind, object_id)
    # Only this object's own grants: an inherited one is revoked on its own object's tab.
    grant = get_object_or_404(Grant.objects.select_related("user", "group", "role"), pk=grant_id, scope=obj.scope)
    try:
        admin_services.revoke_grant(grant, actor=request.user)
    except ServiceError as error:
        if error.status == 403:
            raise PermissionDenied from error
        messages.error(request, error.message)
    else:
        messages.success(request, _("Grant revoked."))
    return redirect(TABS[kind][1], object_id=obj.pk)


def tab_urls(prefix: str, kind: str, name: str) -> list:
    """The Permissions tab's three routes for one kind of object: the tab, grant, revoke."""
    return [
        path(prefix, permissions_tab, {"kind": kind}, name=name),
        path(f"{prefix}grant/", permissions_grant, {"kind": kind}, name=f"{name}-grant"),
        path(f"{prefix}<int:grant_id>/revoke/", permissions_revoke, {"kind": kind}, name=f"{name}-revoke"),
    ]
