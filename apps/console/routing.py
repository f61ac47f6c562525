from django.urls import path

from apps.console import consumers

websocket_urlpatterns = [
    path("ws/vms/<int:pk>/serial/", consumers.SerialConsoleConsumer.as_asgi(), name="ws-vm-serial"),
]
