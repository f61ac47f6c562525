from django.urls import path

from apps.jobs import consumers

websocket_urlpatterns = [
    path("ws/jobs/", consumers.JobListConsumer.as_asgi(), name="ws-jobs"),
    path("ws/jobs/<int:pk>/", consumers.JobConsumer.as_asgi(), name="ws-job"),
]
