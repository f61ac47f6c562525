"""Every WebSocket route of the panel (each app keeps its own in routing.py)."""

from apps.console.routing import websocket_urlpatterns as console_routes
from apps.hosts.routing import websocket_urlpatterns as host_routes
from apps.jobs.routing import websocket_urlpatterns as job_routes
from apps.vms.routing import websocket_urlpatterns as vm_routes

websocket_urlpatterns = [*vm_routes, *host_routes, *console_routes, *job_routes]
