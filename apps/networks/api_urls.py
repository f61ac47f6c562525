"""/api/v1/hosts/{host_id}/networks/... (mounted by kvmpanel/urls.py)."""

from django.urls import path

from apps.networks import api

urlpatterns = [
    path("", api.NetworkListView.as_view(), name="host-network-list"),
    path("<str:name>/", api.NetworkDetailView.as_view(), name="host-network-detail"),
    path("<str:name>/start/", api.NetworkStartView.as_view(), name="host-network-start"),
    path("<str:name>/stop/", api.NetworkStopView.as_view(), name="host-network-stop"),
    path("<str:name>/autostart/", api.NetworkAutostartView.as_view(), name="host-network-autostart"),
    path("<str:name>/leases/", api.NetworkLeasesView.as_view(), name="host-network-leases"),
    path("<str:name>/static-hosts/", api.StaticHostListView.as_view(), name="host-network-static-hosts"),
    path(
        "<str:name>/static-hosts/<str:mac>/",
        api.StaticHostDetailView.as_view(),
        name="host-network-static-host-detail",
    ),
]
