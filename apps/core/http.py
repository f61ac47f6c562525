"""Small helpers the HTML views share: client address, safe return URLs, action responses."""

from collections.abc import Callable
from functools import wraps
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme


def forwarded_client(peer: str | None, forwarded_for: str | None) -> str | None:
    """The client's address: the peer's, or the first X-Forwarded-For entry when the peer is a
    trusted reverse proxy on this machine (KVMPANEL_TRUST_X_FORWARDED_FOR)."""
    if settings.KVMPANEL_TRUST_X_FORWARDED_FOR and forwarded_for and peer in {"127.0.0.1", "::1"}:
        return forwarded_for.split(",")[0].strip() or peer
    return peer or None


def client_address(request: HttpRequest) -> str | None:
    return forwarded_client(request.META.get("REMOTE_ADDR"), request.META.get("HTTP_X_FORWARDED_FOR"))


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


def console_origin() -> str:
    """The console proxy's WebSocket origin for CSP (empty when it is served on this origin)."""
    parts = urlsplit(settings.KVMPANEL_CONSOLE_URL)
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else ""


def strict_csp(view: Callable) -> Callable:
    """A strict Content-Security-Policy: only this origin's scripts and styles, no inline code, no
    framing; WebSockets to this origin and the console proxy. The console pages run under it."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        response = view(request, *args, **kwargs)
        connect = " ".join(filter(None, ["'self'", console_origin()]))
        response["Content-Security-Policy"] = (
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
            f"connect-src {connect}; font-src 'self'; object-src 'none'; base-uri 'none'; "
            "form-action 'self'; frame-ancestors 'none'"
        )
        return response

    return wrapped
