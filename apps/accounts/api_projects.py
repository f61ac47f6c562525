"""`/api/v1/projects/` (list, create, update, usage, quota) and `/api/v1/users/{id}/quota/`.

Quotas are set with POST (all four limits; a missing or null limit is unlimited).

Projects are visible to `user.manage` holders on "/" and to whoever holds `vm.view` on them;
writes (project, quota) need `user.manage` on "/". Invisible is 404, visible but not allowed 403.
"""

from django.shortcuts import get_object_or_404
from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.models import Project, Quota, User
from apps.accounts.projects import (
    QUOTA_FIELDS,
    may_manage,
    save_project,
    set_project_hosts,
    set_quota,
    visible_projects,
)
from apps.accounts.quotas import current_usage
from apps.core.errors import AccessDenied, ServiceError
from apps.hosts.models import Host


class ProjectSerializer(serializers.ModelSerializer):
    hosts = serializers.SerializerMethodField(help_text="Placement: the hosts where members may create VMs")

    class Meta:
        model = Project
        fields = ["id", "name", "description", "hosts", "created_at"]
        read_only_fields = ["id", "hosts", "created_at"]

    def get_hosts(self, project: Project) -> list[int]:
        return sorted(host.pk for host in project.hosts.all())


class PlacementSerializer(serializers.Serializer):
    hosts = serializers.ListField(child=serializers.IntegerField(), allow_empty=True)


class QuotaSerializer(serializers.Serializer):
    max_vms = serializers.IntegerField(min_value=0, allow_null=True, required=False, default=None)
    max_vcpus = serializers.IntegerField(min_value=0, allow_null=True, required=False, default=None)
    max_memory_mib = serializers.IntegerField(min_value=0, allow_null=True, required=False, default=None)
    max_disk_gib = serializers.IntegerField(min_value=0, allow_null=True, required=False, default=None)


def usage_payload(*, user: User | None = None, project: Project | None = None) -> dict:
    """Usage against limits (a null limit is unlimited), as the API and an admin page show it."""
    quota = Quota.objects.filter(user=user, project=project).first()
    usage = current_usage(user=user, project=project)
    return {
        "limits": {field: getattr(quota, field) if quota else None for field in QUOTA_FIELDS},
        "usage": {
            "vms": usage.vms,
            "vcpus": usage.vcpus,
            "memory_mib": usage.memory_mib,
            "disk_bytes": usage.disk_bytes,
            "disk_gib": usage.disk_gib,
        },
    }


class ProjectViewSet(mixins.CreateModelMixin, mixins.UpdateModelMixin, viewsets.ReadOnlyModelViewSet):
    serializer_class = ProjectSerializer

    def get_queryset(self):
        return visible_projects(self.request.user).prefetch_related("hosts")

    def perform_create(self, serializer) -> None:
        serializer.instance = save_project(
            actor=self.request.user,
            name=serializer.validated_data.get("name"),
            description=serializer.validated_data.get("description", ""),
            client_address=self.request.META.get("REMOTE_ADDR"),
        )

    def perform_update(self, serializer) -> None:
        project = serializer.instance
        serializer.instance = save_project(
            actor=self.request.user,
            project=project,
            name=serializer.validated_data.get("name", project.name),
            description=serializer.validated_data.get("description", project.description),
            client_address=self.request.META.get("REMOTE_ADDR"),
        )

    def update(self, request: Request, *args, **kwargs) -> Response:
        if not may_manage(request.user):
            self.get_object()  # 404 first for a project the user cannot see
            raise AccessDenied()
        return super().update(request, *args, **kwargs)

    def create(self, request: Request, *args, **kwargs) -> Response:
        if not may_manage(request.user):
            raise AccessDenied()
        return super().create(request, *args, **kwargs)

    @extend_schema(request=None, summary="The project's usage against its quota")
    @action(detail=True, methods=["get"])
    def usage(self, request: Request, pk=None) -> Response:
        return Response(usage_payload(project=self.get_object()))

    @extend_schema(request=QuotaSerializer, summary="Set the project's quota (null: unlimited)")
    @action(detail=True, methods=["post"])
    def quota(self, request: Request, pk=None) -> Response:
        project = self.get_object()
        data = QuotaSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        set_quota(
            actor=request.user,
            project=project,
            limits=data.validated_data,
            client_address=request.META.get("REMOTE_ADDR"),
        )
        return Response(usage_payload(project=project))

    @extend_schema(request=PlacementSerializer, summary="Set the hosts where the project's members may create VMs")
    @action(detail=True, methods=["post"])
    def hosts(self, request: Request, pk=None) -> Response:
        project = self.get_object()
        data = PlacementSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        wanted = set(data.validated_data["hosts"])
        hosts = list(Host.objects.filter(pk__in=wanted))
        if len(hosts) != len(wanted):
            raise ServiceError(_("No such host."), status=400, code="invalid")
        set_project_hosts(project, hosts, actor=request.user, client_address=request.META.get("REMOTE_ADDR"))
        return Response(ProjectSerializer(project).data)


class UserQuotaView(APIView):
    """GET: a user's usage and limits (one's own, anyone's with user.manage); POST: set them (user.manage)."""

    def _user(self, request: Request, user_id: int) -> User:
        if user_id != request.user.pk and not may_manage(request.user):
            raise AccessDenied(_("Only user managers may look at another user's quota."))  # no existence probe
        return get_object_or_404(User, pk=user_id)

    @extend_schema(request=None, responses={200: None})
    def get(self, request: Request, user_id: int) -> Response:
        return Response(usage_payload(user=self._user(request, user_id)))

    @extend_schema(request=QuotaSerializer, responses={200: None})
    def post(self, request: Request, user_id: int) -> Response:
        user = self._user(request, user_id)
        data = QuotaSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        set_quota(
            actor=request.user, user=user, limits=data.validated_data, client_address=request.META.get("REMOTE_ADDR")
        )
        return Response(usage_payload(user=user))
