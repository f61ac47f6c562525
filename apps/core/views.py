from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_GET


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    return redirect("vms:list")


@require_GET
def health(request: HttpRequest) -> JsonResponse:
    """Liveness for the reverse proxy and compose: answers without touching the hypervisor."""
    return JsonResponse({"status": "ok"})
