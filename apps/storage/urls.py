from django.urls import path

from apps.storage import views

app_name = "storage"

urlpatterns = [
    path("", views.storage_list, name="list"),
    path("hosts/<int:host_pk>/refresh/", views.host_refresh, name="host-refresh"),
    path("pools/add/", views.pool_add, name="pool-add"),
    path("pools/<int:pk>/", views.pool_detail, name="pool-detail"),
    path("pools/<int:pk>/autostart/", views.pool_autostart, name="pool-autostart"),
    path("pools/<int:pk>/delete/", views.pool_delete, name="pool-delete"),
    path("pools/<int:pk>/volumes/add/", views.volume_create, name="volume-create"),
    path("pools/<int:pk>/<slug:action>/", views.pool_action, name="pool-action"),
    path("volumes/<int:pk>/resize/", views.volume_resize, name="volume-resize"),
    path("volumes/<int:pk>/delete/", views.volume_delete, name="volume-delete"),
    path("uploads/<int:pk>/abort/", views.upload_abort, name="upload-abort"),
]
