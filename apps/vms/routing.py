from django.urls import path

from apps.vms import consumers

websocket_urlpatterns = [
    path("ws/vms/", consumers.VMListConsumer.as_asgi(), name="ws-vms"),
    path("ws/vms/<int:pk>/", consumers.VMDetailConsumer.as_asgi(), name="ws-vm"),
]
