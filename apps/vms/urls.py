from django.urls import path

from apps.console import views as console_views
from apps.vms import views

app_name = "vms"

urlpatterns = [
    path("", views.vm_list, name="list"),
    path("define/", views.vm_define, name="define"),
    path("create/", views.vm_create, name="create"),
    path("<int:pk>/", views.vm_detail, name="detail"),
    path("<int:pk>/xml/", views.vm_xml, name="xml"),
    path("<int:pk>/console/", console_views.vnc, name="console"),
    path("<int:pk>/serial/", console_views.serial, name="serial"),
    path("<int:pk>/rename/", views.vm_rename, name="rename"),
    path("<int:pk>/autostart/", views.vm_autostart, name="autostart"),
    path("<int:pk>/delete/", views.vm_delete, name="delete"),
    path("<int:pk>/clone/", views.vm_clone, name="clone"),
    path("<int:pk>/<slug:action>/", views.vm_action, name="action"),
]
