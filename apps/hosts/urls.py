from django.urls import path

from apps.hosts import views

app_name = "hosts"

urlpatterns = [
    path("", views.host_list, name="list"),
    path("add/", views.host_add, name="add"),
    path("<int:pk>/", views.host_detail, name="detail"),
    path("<int:pk>/refresh/", views.host_refresh, name="refresh"),
]
