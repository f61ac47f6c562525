"""`/account/tokens/`: the signed-in user's API tokens: list, create (the secret shown once), revoke.

Thin: writes go through `create_api_token` / `revoke_api_token`; a token of someone else is 404.
The secret is rendered in the answer to the create POST and kept nowhere (not in the session either).
"""

from datetime import datetime, time

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods, require_POST

from apps.accounts.models import ApiToken
from apps.accounts.permissions import held_privileges
from apps.accounts.privileges import PRIVILEGES
from apps.accounts.services import create_api_token, revoke_api_token
from apps.core.errors import ServiceError


class ApiTokenForm(forms.Form):
    name = forms.CharField(label=gettext_lazy("Name"), max_length=100, required=False)
    expires_on = forms.DateField(
        label=gettext_lazy("Expires on"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text=gettext_lazy("Empty: never. The token works until the end of that day."),
    )
    privileges = forms.MultipleChoiceField(
        label=gettext_lazy("Limit to these privileges"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=gettext_lazy("None ticked: everything you may do. Ticked: only these, and never more than you hold."),
    )

    def __init__(self, *args, user, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        held = held_privileges(user)
        self.fields["privileges"].choices = [
            (name, f"{name} — {description}") for name, description in PRIVILEGES.items() if name in held
        ]

    def expires_at(self) -> datetime | None:
        day = self.cleaned_data.get("expires_on")
        if day is None:
            return None
        return timezone.make_aware(datetime.combine(day, time.max))


def _page(request: HttpRequest, form: ApiTokenForm, *, secret: str = "", status: int = 200) -> HttpResponse:
    tokens = ApiToken.objects.filter(user=request.user).order_by("-created_at")
    context = {"form": form, "tokens": tokens, "secret": secret}
    return render(request, "accounts/tokens.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def token_list(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return _page(request, ApiTokenForm(user=request.user))
    form = ApiTokenForm(request.POST, user=request.user)
    if not form.is_valid():
        return _page(request, form, status=400)
    try:
        _token, secret = create_api_token(
            actor=request.user,
            user=request.user,
            name=form.cleaned_data["name"],
            expires_at=form.expires_at(),
            privileges=form.cleaned_data["privileges"],
        )
    except ServiceError as error:
        form.add_error(None, error.message)
        return _page(request, form, status=error.status)
    # Rendered, not redirected: the secret must not travel through the session or a URL.
    response = _page(request, ApiTokenForm(user=request.user), secret=secret)
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    token = get_object_or_404(ApiToken.objects.filter(user=request.user), pk=token_id)
    revoke_api_token(token, actor=request.user)
    messages.success(request, _("Token %(prefix)s… revoked.") % {"prefix": token.prefix})
    return redirect("account-tokens")
