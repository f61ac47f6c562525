"""Disk and snapshot API of one VM: /api/v1/vms/{id}/disks/ and /api/v1/vms/{id}/snapshots/.

The same services as the VM page. Lookups go through the one gate (invisible VM: 404; visible without
the privilege: 403). Input reaches the services as the client sent it (JSON types included): they own
every check, so the API and the pages refuse the same things with the same messages. Attach, detach,
grow and media answer at once; convert, move and every snapshot change are jobs (`202 {"job": ...}`).
"""

from dataclasses import asdict
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.permissions import get_object_or_deny
from apps.core.http import client_address
from apps.jobs.api import JobSerializer
from apps.vms import disks as disk_services
from apps.vms import snapshots as snapshot_services
from apps.vms.disks import DiskChange
from apps.vms.models import VirtualMachine


class DiskSerializer(serializers.Serializer):
    target = serializers.CharField(help_text="Guest device: vda, vdb, hdc")
    bus = serializers.CharField()
    device = serializers.CharField(help_text="disk or cdrom")
    source = serializers.CharField(help_text="The file, or empty for an empty CD-ROM drive")
    format = serializers.CharField(help_text="Driver type: qcow2, raw")
    readonly = serializers.BooleanField()
    shareable = serializers.BooleanField()
    pool = serializers.CharField(help_text="The storage pool holding the file")
    capacity_bytes = serializers.IntegerField(help_text="What the guest sees")
    allocation_bytes = serializers.IntegerField(help_text="What the file uses on the host")


class SnapshotSerializer(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()
    state = serializers.CharField(help_text="The VM's state when it was taken")
    created = serializers.IntegerField(help_text="Unix time")
    parent = serializers.CharField()
    children = serializers.ListField(child=serializers.CharField())
    current = serializers.BooleanField(help_text="The VM continues from this snapshot")
    memory = serializers.BooleanField(help_text="The guest's RAM was saved too")
    external = serializers.BooleanField(help_text="Made outside the panel with --disk-only: left alone here")
    depth = serializers.IntegerField(help_text="Ancestors above it, in tree order")


class AttachSerializer(serializers.Serializer):
    pool = serializers.JSONField(required=False, help_text="New volume: its pool")
    name = serializers.JSONField(required=False, help_text="New volume: its name, e.g. data.qcow2")
    size_bytes = serializers.JSONField(required=False, help_text="New volume: its size; omit to attach `path`")
    format = serializers.JSONField(required=False, help_text="New volume: qcow2 (default) or raw")
    path = serializers.JSONField(required=False, help_text="Existing volume: its path inside a pool")
    target = serializers.JSONField(required=False, help_text="vdb, vdc, ... (default: the next free one)")
    live = serializers.BooleanField(required=False, allow_null=True, default=None)
    persistent = serializers.BooleanField(required=False, allow_null=True, default=None)


class ResizeSerializer(serializers.Serializer):
    size_bytes = serializers.JSONField(help_text="The new size; disks only grow")


class ConvertSerializer(serializers.Serializer):
    format = serializers.JSONField(help_text="qcow2 or raw")
    pool = serializers.JSONField(required=False, help_text="Default: the disk's pool")
    name = serializers.JSONField(required=False, help_text="Default: the disk's name with the new suffix")
    delete_source = serializers.JSONField(required=False, help_text="Delete the old volume after the switch")


class MoveSerializer(serializers.Serializer):
    pool = serializers.JSONField(help_text="The pool to move the disk to")
    name = serializers.JSONField(required=False, help_text="Default: the disk's volume name")
    delete_source = serializers.JSONField(required=False, help_text="Delete the old volume after the switch")


class MediaSerializer(serializers.Serializer):
    path = serializers.JSONField(help_text="An ISO image's path inside a pool")


class SnapshotCreateSerializer(serializers.Serializer):
    name = serializers.JSONField(help_text="1-63 letters, digits, '.', '_' or '-'")
    description = serializers.JSONField(required=False, help_text="At most 1000 characters")


CHANGE = inline_serializer(
    "DiskChange",
    {"target": serializers.CharField(), "command": serializers.CharField(), "disks": DiskSerializer(many=True)},
)
ACCEPTED = inline_serializer("DiskJobAccepted", {"job": JobSerializer()})
WHERE = [
    OpenApiParameter("live", OpenApiTypes.BOOL, description="The running VM (default: when it runs)"),
    OpenApiParameter("persistent", OpenApiTypes.BOOL, description="Its configuration (default: when it has one)"),
]


def _input(serializer_class: type[serializers.Serializer], request: Request) -> dict[str, Any]:
    data = serializer_class(data=request.data)
    data.is_valid(raise_exception=True)
    return {key: value for key, value in data.validated_data.items() if value is not None}


def _flag(request: Request, name: str) -> bool | None:
    value = request.query_params.get(name)
    if value is None:
        return None
    if value.lower() not in {"1", "true", "yes", "0", "false", "no"}:
        raise ValidationError({name: ["true or false"]})
    return value.lower() in {"1", "true", "yes"}


class _OnVM(APIView):
    def vm(self, request: Request, vm_id: int, privilege: str | None = None) -> VirtualMachine:
        return get_object_or_deny(VirtualMachine.objects.select_related("host"), request.user, vm_id, privilege)

    def changed(self, request: Request, change: DiskChange, status_code: int = status.HTTP_200_OK) -> Response:
        disks = disk_services.describe_disks(change.vm, actor=request.user)
        body = {"target": change.target, "command": change.command, "disks": [asdict(disk) for disk in disks]}
        return Response(body, status=status_code)

    def accepted(self, job) -> Response:
        return Response({"job": JobSerializer(job).data}, status=status.HTTP_202_ACCEPTED)


class DiskListView(_OnVM):
    @extend_schema(responses={200: DiskSerializer(many=True)}, summary="virsh domblklist --details + domblkinfo")
    def get(self, request: Request, vm_id: int) -> Response:
        disks = disk_services.describe_disks(self.vm(request, vm_id), actor=request.user)
        return Response(DiskSerializer([asdict(disk) for disk in disks], many=True).data)

    @extend_schema(request=AttachSerializer, responses={201: CHANGE}, summary="virsh attach-disk (new or existing)")
    def post(self, request: Request, vm_id: int) -> Response:
        vm = self.vm(request, vm_id, disk_services.PRIVILEGE)
        values = _input(AttachSerializer, request)
        if "format" in values:
            values["fmt"] = values.pop("format")
        change = disk_services.attach_disk(vm, actor=request.user, client_address=client_address(request), **values)
        return self.changed(request, change, status.HTTP_201_CREATED)


class DiskDetailView(_OnVM):
    @extend_schema(responses={200: DiskSerializer})
    def get(self, request: Request, vm_id: int, target: str) -> Response:
        disks = disk_services.describe_disks(self.vm(request, vm_id), actor=request.user)
        disk = next((disk for disk in disks if disk.target == target), None)
        if disk is None:
            raise NotFound()
        return Response(DiskSerializer(asdict(disk)).data)

    @extend_schema(parameters=WHERE, responses={200: CHANGE}, summary="virsh detach-disk (the volume is kept)")
    def delete(self, request: Request, vm_id: int, target: str) -> Response:
        vm = self.vm(request, vm_id, disk_services.PRIVILEGE)
        change = disk_services.detach_disk(
            vm,
            target,
            actor=request.user,
            live=_flag(request, "live"),
            persistent=_flag(request, "persistent"),
            client_address=client_address(request),
        )
        return self.changed(request, change)


class DiskResizeView(_OnVM):
    @extend_schema(request=ResizeSerializer, responses={200: CHANGE}, summary="virsh blockresize / vol-resize")
    def post(self, request: Request, vm_id: int, target: str) -> Response:
        vm = self.vm(request, vm_id, disk_services.PRIVILEGE)
        size = _input(ResizeSerializer, request)["size_bytes"]
        change = disk_services.grow_disk(vm, target, size, actor=request.user, client_address=client_address(request))
        return self.changed(request, change)


class DiskConvertView(_OnVM):
    @extend_schema(request=ConvertSerializer, responses={202: ACCEPTED}, summary="qemu-img convert + repoint (job)")
    def post(self, request: Request, vm_id: int, target: str) -> Response:
        vm = self.vm(request, vm_id, disk_services.PRIVILEGE)
        values = _input(ConvertSerializer, request)
        values["fmt"] = values.pop("format")
        job = disk_services.convert_disk(
            vm, target, actor=request.user, client_address=client_address(request), **values
        )
        return self.accepted(job)


class DiskMoveView(_OnVM):
    @extend_schema(request=MoveSerializer, responses={202: ACCEPTED}, summary="Copy to another pool + repoint (job)")
    def post(self, request: Request, vm_id: int, target: str) -> Response:
        vm = self.vm(request, vm_id, disk_services.PRIVILEGE)
        values = _input(MoveSerializer, request)
        job = disk_services.move_disk(vm, target, actor=request.user, client_address=client_address(request), **values)
        return self.accepted(job)


class DiskMediaView(_OnVM):
    @extend_schema(request=MediaSerializer, responses={200: CHANGE}, summary="virsh change-media --insert")
    def post(self, request: Request, vm_id: int, target: str) -> Response:
        vm = self.vm(request, vm_id, disk_services.PRIVILEGE)
        path = _input(MediaSerializer, request)["path"]
        if not path:
            raise ValidationError({"path": ["Give the image to insert; DELETE ejects."]})
        change = disk_services.change_media(
            vm, target, actor=request.user, path=path, client_address=client_address(request)
        )
        return self.changed(request, change)

    @extend_schema(responses={200: CHANGE}, summary="virsh change-media --eject")
    def delete(self, request: Request, vm_id: int, target: str) -> Response:
        vm = self.vm(request, vm_id, disk_services.PRIVILEGE)
        change = disk_services.change_media(vm, target, actor=request.user, client_address=client_address(request))
        return self.changed(request, change)


class SnapshotListView(_OnVM):
    @extend_schema(responses={200: SnapshotSerializer(many=True)}, summary="virsh snapshot-list --tree")
    def get(self, request: Request, vm_id: int) -> Response:
        snapshots = snapshot_services.list_snapshots(self.vm(request, vm_id), actor=request.user)
        return Response(SnapshotSerializer([asdict(snapshot) for snapshot in snapshots], many=True).data)

    @extend_schema(request=SnapshotCreateSerializer, responses={202: ACCEPTED}, summary="virsh snapshot-create-as")
    def post(self, request: Request, vm_id: int) -> Response:
        vm = self.vm(request, vm_id, "vm.snapshot")
        values = _input(SnapshotCreateSerializer, request)
        job = snapshot_services.create_snapshot(
            vm, actor=request.user, client_address=client_address(request), **values
        )
        return self.accepted(job)


class SnapshotDetailView(_OnVM):
    @extend_schema(responses={200: SnapshotSerializer})
    def get(self, request: Request, vm_id: int, name: str) -> Response:
        snapshots = snapshot_services.list_snapshots(self.vm(request, vm_id), actor=request.user)
        snapshot = next((snapshot for snapshot in snapshots if snapshot.name == name), None)
        if snapshot is None:
            raise NotFound()
        return Response(SnapshotSerializer(asdict(snapshot)).data)

    @extend_schema(responses={202: ACCEPTED}, summary="virsh snapshot-delete (job)")
    def delete(self, request: Request, vm_id: int, name: str) -> Response:
        vm = self.vm(request, vm_id, "vm.snapshot")
        job = snapshot_services.delete_snapshot(vm, name, actor=request.user, client_address=client_address(request))
        return self.accepted(job)


class SnapshotRevertView(_OnVM):
    @extend_schema(request=None, responses={202: ACCEPTED}, summary="virsh snapshot-revert (job)")
    def post(self, request: Request, vm_id: int, name: str) -> Response:
        vm = self.vm(request, vm_id, "vm.snapshot.rollback")
        job = snapshot_services.revert_snapshot(vm, name, actor=request.user, client_address=client_address(request))
        return self.accepted(job)
