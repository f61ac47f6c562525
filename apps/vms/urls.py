from django.urls import path

from apps.console import views as console_views
from apps.vms import compute_views, disk_views, views

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
    path("<int:pk>/disks/attach/", disk_views.disk_attach, name="disk-attach"),
    path("<int:pk>/disks/<str:target>/detach/", disk_views.disk_detach, name="disk-detach"),
    path("<int:pk>/disks/<str:target>/grow/", disk_views.disk_grow, name="disk-grow"),
    path("<int:pk>/disks/<str:target>/media/", disk_views.disk_media, name="disk-media"),
    path("<int:pk>/disks/<str:target>/convert/", disk_views.disk_convert, name="disk-convert"),
    path("<int:pk>/disks/<str:target>/move/", disk_views.disk_move, name="disk-move"),
    path("<int:pk>/snapshots/", disk_views.snapshot_tree, name="snapshots"),
    path("<int:pk>/snapshots/create/", disk_views.snapshot_create, name="snapshot-create"),
    path("<int:pk>/snapshots/<str:name>/revert/", disk_views.snapshot_revert, name="snapshot-revert"),
    path("<int:pk>/snapshots/<str:name>/delete/", disk_views.snapshot_delete, name="snapshot-delete"),
    path("<int:pk>/compute/vcpus/", compute_views.compute_vcpus, name="compute-vcpus"),
    path("<int:pk>/compute/memory/", compute_views.compute_memory, name="compute-memory"),
    path("<int:pk>/compute/memory-stats/", compute_views.memory_stats, name="memory-stats"),
    path("<int:pk>/<slug:action>/", views.vm_action, name="action"),
]
