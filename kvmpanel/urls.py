from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from apps.accounts.api_admin import EffectivePermissionsView, GrantViewSet, GroupViewSet, RoleViewSet, UserViewSet
from apps.accounts.api_projects import ProjectViewSet, UserQuotaView
from apps.accounts.api_tokens import ApiTokenViewSet
from apps.accounts.quota_views import quota_overview
from apps.audit.api import AuditEventViewSet
from apps.core import views as core_views
from apps.hosts.api import HostViewSet
from apps.jobs.api import JobViewSet
from apps.storage.api import StoragePoolViewSet, StorageUploadViewSet, StorageVolumeViewSet
from apps.vms import api_compute, api_disks
from apps.vms.api import VirtualMachineViewSet

router = DefaultRouter()
router.register("hosts", HostViewSet, basename="host")
router.register("vms", VirtualMachineViewSet, basename="vm")
router.register("jobs", JobViewSet, basename="job")
router.register("tokens", ApiTokenViewSet, basename="token")
router.register("users", UserViewSet, basename="user")
router.register("groups", GroupViewSet, basename="group")
router.register("roles", RoleViewSet, basename="role")
router.register("grants", GrantViewSet, basename="grant")
router.register("projects", ProjectViewSet, basename="project")
router.register("audit", AuditEventViewSet, basename="audit-event")
router.register("pools", StoragePoolViewSet, basename="pool")
router.register(r"pools/(?P<pool_pk>[0-9]+)/volumes", StorageVolumeViewSet, basename="pool-volume")
router.register(r"pools/(?P<pool_pk>[0-9]+)/uploads", StorageUploadViewSet, basename="pool-upload")

urlpatterns = [
    path("", core_views.home, name="home"),
    path("healthz", core_views.health, name="health"),
    path("", include("apps.accounts.urls")),
    path("account/quotas/", quota_overview, name="account-quotas"),
    path("vms/", include("apps.vms.urls")),
    path("hosts/", include("apps.hosts.urls")),
    path("storage/", include("apps.storage.urls")),
    path("hosts/<int:host_pk>/networks/", include("apps.networks.urls")),
    path("jobs/", include("apps.jobs.urls")),
    path("audit/", include("apps.audit.urls")),
    path("api/v1/vms/<int:vm_id>/disks/", api_disks.DiskListView.as_view(), name="vm-disk-list"),
    path("api/v1/vms/<int:vm_id>/disks/<str:target>/", api_disks.DiskDetailView.as_view(), name="vm-disk-detail"),
    path(
        "api/v1/vms/<int:vm_id>/disks/<str:target>/resize/", api_disks.DiskResizeView.as_view(), name="vm-disk-resize"
    ),
    path(
        "api/v1/vms/<int:vm_id>/disks/<str:target>/convert/",
        api_disks.DiskConvertView.as_view(),
        name="vm-disk-convert",
    ),
    path("api/v1/vms/<int:vm_id>/disks/<str:target>/move/", api_disks.DiskMoveView.as_view(), name="vm-disk-move"),
    path("api/v1/vms/<int:vm_id>/disks/<str:target>/media/", api_disks.DiskMediaView.as_view(), name="vm-disk-media"),
    path("api/v1/vms/<int:vm_id>/snapshots/", api_disks.SnapshotListView.as_view(), name="vm-snapshot-list"),
    path(
        "api/v1/vms/<int:vm_id>/snapshots/<str:name>/",
        api_disks.SnapshotDetailView.as_view(),
        name="vm-snapshot-detail",
    ),
    path(
        "api/v1/vms/<int:vm_id>/snapshots/<str:name>/revert/",
        api_disks.SnapshotRevertView.as_view(),
        name="vm-snapshot-revert",
    ),
    path("api/v1/vms/<int:vm_id>/vcpus/", api_compute.VcpusView.as_view(), name="vm-vcpus"),
    path("api/v1/vms/<int:vm_id>/memory/", api_compute.MemoryView.as_view(), name="vm-memory"),
    path("api/v1/vms/<int:vm_id>/memory-stats/", api_compute.MemoryStatsView.as_view(), name="vm-memory-stats"),
    path("api/v1/users/<int:user_id>/quota/", UserQuotaView.as_view(), name="user-quota"),
    path("api/v1/users/<int:user_id>/effective/", EffectivePermissionsView.as_view(), name="user-effective"),
    path("api/v1/hosts/<int:host_id>/networks/", include("apps.networks.api_urls")),
    path("api/v1/", include(router.urls)),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("admin/", admin.site.urls),
]
