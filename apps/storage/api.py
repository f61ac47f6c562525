"""Storage API: /api/v1/pools/ and /api/v1/pools/{id}/volumes/. The same services as the pages;
lookups through the one gate (invisible: 404, visible without storage.manage: 403).

An upload is a session at /api/v1/pools/{id}/uploads/: POST {name, size} creates the volume, each
PUT ?offset=N sends the next part as the raw body (`Content-Type: application/octet-stream`, at
most 64 MiB), read a chunk at a time and streamed to the host; DELETE aborts. Downloads stream back.
"""

from asgiref.sync import sync_to_async
from django.core.exceptions import PermissionDenied
from django.http import StreamingHttpResponse
from django.utils.http import content_disposition_header
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from apps.accounts.permissions import get_object_or_deny, has_privilege
from apps.core.errors import ServiceError
from apps.core.http import client_address
from apps.hosts.models import Host
from apps.storage import services, transfers
from apps.storage.models import StoragePool, StorageUpload, StorageVolume
from apps.storage.selectors import visible_pools, visible_volumes
from apps.storage.sync import POOL_COLUMNS
from apps.storage.validators import VOLUME_FORMATS
from kvmpanel.virt.storage import VolumeDownload


class StoragePoolSerializer(serializers.ModelSerializer):
    host_name = serializers.CharField(source="host.name", read_only=True)

    class Meta:
        model = StoragePool
        fields = ["id", "host", "host_name", "name", *POOL_COLUMNS, "observed_at"]
        read_only_fields = fields


class StorageVolumeSerializer(serializers.ModelSerializer):
    pool_name = serializers.CharField(source="pool.name", read_only=True)

    class Meta:
        model = StorageVolume
        fields = [
            "id",
            "pool",
            "pool_name",
            "name",
            "path",
            "type",
            "format",
            "capacity_bytes",
            "allocation_bytes",
            "physical_bytes",
            "backing_path",
        ]
        read_only_fields = fields


# Input is passed to the services as given (JSON types included): they own every check, so the API
# and the pages refuse the same things with the same messages.
class PoolCreateSerializer(serializers.Serializer):
    host = serializers.IntegerField()
    name = serializers.JSONField()
    path = serializers.JSONField()
    type = serializers.CharField(default="dir")
    autostart = serializers.BooleanField(default=True)


class AutostartSerializer(serializers.Serializer):
    enabled = serializers.BooleanField()


class VolumeCreateSerializer(serializers.Serializer):
    name = serializers.JSONField()
    format = serializers.JSONField(default="qcow2", help_text=" or ".join(VOLUME_FORMATS))
    capacity_bytes = serializers.JSONField(help_text="Virtual size in bytes (the volume is sparse)")


class VolumeResizeSerializer(serializers.Serializer):
    capacity_bytes = serializers.JSONField(help_text="New, larger size in bytes (volumes only grow)")


def _valid(serializer_class, request: Request):
    data = serializer_class(data=request.data)
    data.is_valid(raise_exception=True)
    return data.validated_data


@extend_schema(parameters=[OpenApiParameter("host", OpenApiTypes.INT, description="Only this host's pools")])
class StoragePoolViewSet(viewsets.ReadOnlyModelViewSet):
    """`virsh pool-list --all --details`, from the inventory."""

    serializer_class = StoragePoolSerializer

    def get_queryset(self):
        pools = visible_pools(self.request.user)
        host = self.request.query_params.get("host", "")
        return pools.filter(host=int(host)) if host.isdigit() else pools

    def _lookup(self, request: Request, pk, privilege: str | None = "storage.manage") -> StoragePool:
        return get_object_or_deny(StoragePool.objects.select_related("host"), request.user, pk, privilege)

    @extend_schema(
        request=PoolCreateSerializer,
        responses={201: StoragePoolSerializer},
        summary="virsh pool-define-as NAME dir --target PATH; pool-build; pool-start; pool-autostart",
    )
    def create(self, request: Request) -> Response:
        data = _valid(PoolCreateSerializer, request)
        host = get_object_or_deny(Host.objects.all(), request.user, data["host"])
        if not has_privilege(request.user, host, "storage.manage"):
            raise PermissionDenied
        pool = services.create_pool(
            host,
            actor=request.user,
            name=data["name"],
            path=data["path"],
            pool_type=data["type"],
            autostart=data["autostart"],
            client_address=client_address(request),
        )
        return Response(StoragePoolSerializer(pool).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={204: None}, summary="virsh pool-destroy; pool-delete; pool-undefine (empty pools only)")
    def destroy(self, request: Request, pk=None) -> Response:
        services.delete_pool(self._lookup(request, pk), actor=request.user, client_address=client_address(request))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={200: StoragePoolSerializer}, summary="virsh pool-start")
    @action(detail=True, methods=["post"])
    def start(self, request: Request, pk=None) -> Response:
        pool = services.start_pool(
            self._lookup(request, pk), actor=request.user, client_address=client_address(request)
        )
        return Response(StoragePoolSerializer(pool).data)

    @extend_schema(request=None, responses={200: StoragePoolSerializer}, summary="virsh pool-destroy")
    @action(detail=True, methods=["post"])
    def stop(self, request: Request, pk=None) -> Response:
        pool = services.stop_pool(self._lookup(request, pk), actor=request.user, client_address=client_address(request))
        return Response(StoragePoolSerializer(pool).data)

    @extend_schema(request=AutostartSerializer, responses={200: StoragePoolSerializer}, summary="virsh pool-autostart")
    @action(detail=True, methods=["post"])
    def autostart(self, request: Request, pk=None) -> Response:
        pool = self._lookup(request, pk)
        enabled = _valid(AutostartSerializer, request)["enabled"]
        pool = services.set_pool_autostart(pool, enabled, actor=request.user, client_address=client_address(request))
        return Response(StoragePoolSerializer(pool).data)

    @extend_schema(request=None, responses={200: StoragePoolSerializer}, summary="virsh pool-refresh")
    @action(detail=True, methods=["post"])
    def refresh(self, request: Request, pk=None) -> Response:
        pool = services.refresh_pool(
            self._lookup(request, pk), actor=request.user, client_address=client_address(request)
        )
        return Response(StoragePoolSerializer(pool).data)


async def _stream(download: VolumeDownload):
    """Hand the download's chunks to the ASGI server one at a time, each read in a worker thread.

    A plain iterator would make Django's ASGI handler collect the whole volume in memory first.
    """
    chunks = download.chunks()
    try:
        while True:
            chunk = await sync_to_async(next, thread_sensitive=False)(chunks, None)
            if chunk is None:
                return
            yield chunk
    finally:
        await sync_to_async(download.close, thread_sensitive=False)()


class StorageVolumeViewSet(viewsets.ReadOnlyModelViewSet):
    """`virsh vol-list --pool POOL --details`, from the inventory."""

    serializer_class = StorageVolumeSerializer

    def _pool(self, privilege: str | None = None) -> StoragePool:
        return get_object_or_deny(
            StoragePool.objects.select_related("host"), self.request.user, self.kwargs["pool_pk"], privilege
        )

    def get_queryset(self):
        return visible_volumes(self.request.user).filter(pool_id=self._pool().pk)

    def _lookup(self, request: Request, pk) -> StorageVolume:
        pool = self._pool()
        return get_object_or_deny(
            StorageVolume.objects.filter(pool=pool).select_related("pool__host"), request.user, pk, "storage.manage"
        )

    @extend_schema(
        request=VolumeCreateSerializer,
        responses={201: StorageVolumeSerializer},
        summary="virsh vol-create-as POOL NAME SIZE --format qcow2|raw (sparse)",
    )
    def create(self, request: Request, pool_pk=None) -> Response:
        pool = self._pool("storage.manage")
        data = _valid(VolumeCreateSerializer, request)
        volume = services.create_volume(
            pool,
            actor=request.user,
            name=data["name"],
            fmt=data["format"],
            capacity_bytes=data["capacity_bytes"],
            client_address=client_address(request),
        )
        return Response(StorageVolumeSerializer(volume).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={204: None}, summary="virsh vol-delete --pool POOL NAME")
    def destroy(self, request: Request, pool_pk=None, pk=None) -> Response:
        volume = self._lookup(request, pk)
        services.delete_volume(volume, actor=request.user, client_address=client_address(request))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        request=VolumeResizeSerializer,
        responses={200: StorageVolumeSerializer},
        summary="virsh vol-resize --pool POOL NAME SIZE (grow only)",
    )
    @action(detail=True, methods=["post"])
    def resize(self, request: Request, pool_pk=None, pk=None) -> Response:
        volume = self._lookup(request, pk)
        size = _valid(VolumeResizeSerializer, request)["capacity_bytes"]
        volume = services.resize_volume(volume, size, actor=request.user, client_address=client_address(request))
        return Response(StorageVolumeSerializer(volume).data)

    @extend_schema(
        responses={(200, "application/octet-stream"): OpenApiTypes.BINARY},
        summary="virsh vol-download --sparse --pool POOL NAME FILE",
    )
    @action(detail=True, methods=["get"])
    def download(self, request: Request, pool_pk=None, pk=None) -> StreamingHttpResponse:
        volume = self._lookup(request, pk)
        download = transfers.open_volume_download(volume, actor=request.user, client_address=client_address(request))
        response = StreamingHttpResponse(_stream(download), content_type="application/octet-stream")
        response["Content-Length"] = str(download.length)
        response["Content-Disposition"] = content_disposition_header(True, volume.name)
        response["X-Content-Type-Options"] = "nosniff"
        return response


class StorageUploadSerializer(serializers.ModelSerializer):
    percent = serializers.IntegerField(read_only=True)
    part_bytes = serializers.SerializerMethodField(help_text="The part size to send (at most max_part_bytes)")
    max_part_bytes = serializers.SerializerMethodField()

    class Meta:
        model = StorageUpload
        fields = [
            "id",
            "pool",
            "name",
            "size_bytes",
            "received_bytes",
            "percent",
            "part_bytes",
            "max_part_bytes",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_part_bytes(self, upload: StorageUpload) -> int:
        return transfers.PART_BYTES

    def get_max_part_bytes(self, upload: StorageUpload) -> int:
        return transfers.MAX_PART_BYTES


class UploadStartSerializer(serializers.Serializer):
    name = serializers.JSONField()
    size = serializers.JSONField(help_text="The whole file's size in bytes")


class UploadPartResultSerializer(serializers.Serializer):
    upload = StorageUploadSerializer()
    volume = StorageVolumeSerializer(allow_null=True, help_text="The finished volume, after the last part")


class StorageUploadViewSet(viewsets.ReadOnlyModelViewSet):
    """Uploads in progress in a pool (`virsh vol-upload --sparse`, one part per request)."""

    serializer_class = StorageUploadSerializer

    def get_parsers(self):
        if self.request is not None and self.request.method == "PUT":
            return []  # a part is the raw body, read a chunk at a time by the service
        return super().get_parsers()

    def _pool(self, privilege: str | None = None) -> StoragePool:
        return get_object_or_deny(
            StoragePool.objects.select_related("host"), self.request.user, self.kwargs["pool_pk"], privilege
        )

    def get_queryset(self):
        return StorageUpload.objects.restrict(self.request.user, "host.view").filter(pool_id=self._pool().pk)

    def _lookup(self, pk) -> StorageUpload:
        pool = self._pool()
        return get_object_or_deny(
            StorageUpload.objects.filter(pool=pool).select_related("pool__host"),
            self.request.user,
            pk,
            "storage.manage",
        )

    @extend_schema(
        request=UploadStartSerializer,
        responses={201: StorageUploadSerializer},
        summary="virsh vol-create-as POOL NAME SIZE --format raw: start an upload",
    )
    def create(self, request: Request, pool_pk=None) -> Response:
        pool = self._pool("storage.manage")
        data = _valid(UploadStartSerializer, request)
        upload = transfers.start_upload(
            pool, actor=request.user, name=data["name"], size=data["size"], client_address=client_address(request)
        )
        return Response(StorageUploadSerializer(upload).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        parameters=[OpenApiParameter("offset", OpenApiTypes.INT, required=True, description="Bytes received so far")],
        request={"application/octet-stream": OpenApiTypes.BINARY},
        responses={200: UploadPartResultSerializer},
        summary="virsh vol-upload --sparse --offset OFFSET --length LENGTH: the next part (the body)",
    )
    def update(self, request: Request, pool_pk=None, pk=None) -> Response:
        upload = self._lookup(pk)
        raw = request._request  # the body is read here a chunk at a time, never parsed by DRF
        if raw.content_type != "application/octet-stream":
            raise ServiceError(
                _("Send the part itself as the request body, with Content-Type: application/octet-stream."),
                status=status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
                code="unsupported-media-type",
            )
        offset = request.query_params.get("offset", "")
        volume = transfers.write_upload_part(
            upload,
            raw,
            actor=request.user,
            offset=int(offset) if offset.isdigit() else offset,
            length=int(raw.META.get("CONTENT_LENGTH") or 0),
            client_address=client_address(request),
        )
        if volume is None:
            upload.refresh_from_db()
        return Response(
            {
                "upload": StorageUploadSerializer(upload).data,
                "volume": StorageVolumeSerializer(volume).data if volume is not None else None,
            }
        )

    @extend_schema(responses={204: None}, summary="Abort the upload and delete its half-filled volume")
    def destroy(self, request: Request, pool_pk=None, pk=None) -> Response:
        transfers.abort_upload(self._lookup(pk), actor=request.user, client_address=client_address(request))
        return Response(status=status.HTTP_204_NO_CONTENT)
