from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from apps.accounts.permissions import get_object_or_deny
from apps.hosts import services
from apps.hosts.models import Host


class HostSerializer(serializers.ModelSerializer):
    class Meta:
        model = Host
        fields = [
            "id",
            "name",
            "uri",
            "status",
            "status_message",
            "status_changed_at",
            "last_seen_at",
            *Host.CAPABILITY_FIELDS,
            "probed_at",
        ]
        read_only_fields = [f for f in fields if f not in {"name", "uri"}]


class HostViewSet(mixins.CreateModelMixin, mixins.DestroyModelMixin, viewsets.ReadOnlyModelViewSet):
    serializer_class = HostSerializer

    def get_queryset(self):
        return Host.objects.restrict(self.request.user, "host.view")

    def create(self, request: Request, *args, **kwargs) -> Response:
        data = HostSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        host = services.add_host(actor=request.user, name=data.validated_data["name"], uri=data.validated_data["uri"])
        return Response(HostSerializer(host).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={204: None}, summary="Forget the host (refused while it has VMs)")
    def destroy(self, request: Request, pk=None) -> Response:
        host = get_object_or_deny(Host.objects.all(), request.user, pk, "host.manage")
        services.remove_host(host, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={200: HostSerializer}, summary="Probe the host's capabilities again")
    @action(detail=True, methods=["post"])
    def refresh(self, request: Request, pk=None) -> Response:
        host = get_object_or_deny(Host.objects.all(), request.user, pk, "host.manage")
        return Response(HostSerializer(services.refresh_host(host, actor=request.user)).data)
