from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils import translation
from django.views.decorators.http import require_POST

from apps.accounts.services import set_language
from apps.core.http import safe_return_url


@login_required
@require_POST
def language(request: HttpRequest) -> HttpResponse:
    """Store the user's language choice on their account (not only in a cookie)."""
    choice = request.POST.get("language", "")
    if choice not in {code for code, _name in settings.LANGUAGES}:
        choice = ""
    set_language(actor=request.user, language=choice)
    if choice:
        translation.activate(choice)
    return redirect(safe_return_url(request, "/"))
