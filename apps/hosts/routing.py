from django.urls import path

from apps.hosts import consumers

websocket_urlpatterns = [
    path("ws/hosts/", consumers.HostListConsumer.as_asgi(), name="ws-hosts"),
]
