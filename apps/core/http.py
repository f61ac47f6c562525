"""Small helpers the HTML views share: client address, safe return URLs, action responses."""

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme


def client_address(request: HttpRequest) -> str | None:
    return request.META.get("REMOTE_ADDR") or None


def safe_return_url(request: HttpRequest, fallback: str) -> str:
    """`return_url` from the form if it points back into the panel; never the Referer."""
    candidate = request.POST.get("return_url") or request.GET.get("return_url") or ""
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return fallback


def action_response(request: HttpRequest, *, ok: bool, message: str, fallback_url: str) -> HttpResponse:
    """htmx requests get the message fragment in place (the page stays); plain forms get a redirect."""
    level = messages.SUCCESS if ok else messages.ERROR
    if request.headers.get("HX-Request") == "true":
        response = render(request, "core/_message.html", {"message": message, "ok": ok})
        response["X-Action-Result"] = "ok" if ok else "refused"
        return response
    messages.add_message(request, level, message)
    return redirect(safe_return_url(request, fallback_url))
