"""The Networks page of one host: /hosts/{host_pk}/networks/ (mounted by kvmpanel/urls.py)."""

from django.urls import path

from apps.networks import views

app_name = "networks"

urlpatterns = [
    path("", views.network_list, name="list"),
    path("add/", views.network_create, name="create"),
    path("<str:name>/static-hosts/add/", views.static_host_add, name="static-host-add"),
    path("<str:name>/static-hosts/<str:mac>/delete/", views.static_host_delete, name="static-host-delete"),
    path("<str:name>/<slug:action>/", views.network_action, name="action"),
]
