"""vCPU and memory API of one VM: /api/v1/vms/{id}/vcpus/, /memory/ and /memory-stats/.

The same services as the VM page. Lookups go through the one gate (invisible VM: 404; visible without
the privilege: 403). Numbers reach the services as the client sent them (JSON types included): the
services own every check, so the API and the page refuse the same things with the same messages.
A body with `count` (or `mib`) changes the current value, `live` and `config` choosing where (unset:
every definition the VM has); a body with `maximum` (or `maximum_mib`) changes the maximum.
"""

from dataclasses import asdict

from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from apps.core.errors import ServiceError
from apps.core.http import client_address
from apps.vms import compute as compute_services
from apps.vms.api_disks import _input, _OnVM
from apps.vms.compute import ComputeChange


class VcpusSerializer(serializers.Serializer):
    count = serializers.JSONField(required=False, help_text="Online vCPUs, up to the maximum")
    maximum = serializers.JSONField(required=False, help_text="Maximum vCPUs (shut-off VMs only)")
    live = serializers.BooleanField(required=False, allow_null=True, default=None)
    config = serializers.BooleanField(required=False, allow_null=True, default=None)


class MemorySerializer(serializers.Serializer):
    mib = serializers.JSONField(required=False, help_text="Current memory (the balloon) in MiB, up to the maximum")
    maximum_mib = serializers.JSONField(required=False, help_text="Maximum memory in MiB (shut-off VMs only)")
    live = serializers.BooleanField(required=False, allow_null=True, default=None)
    config = serializers.BooleanField(required=False, allow_null=True, default=None)


class SizingSerializer(serializers.Serializer):
    vcpus_current = serializers.IntegerField()
    vcpus_max = serializers.IntegerField()
    memory_current_kib = serializers.IntegerField()
    memory_max_kib = serializers.IntegerField()


class MemoryStatsSerializer(serializers.Serializer):
    actual_kib = serializers.IntegerField(help_text="The balloon: what the guest was given")
    rss_kib = serializers.IntegerField(help_text="What the QEMU process holds on the host")
    available_kib = serializers.IntegerField(help_text="Total memory as the guest sees it")
    unused_kib = serializers.IntegerField(help_text="Free in the guest")
    usable_kib = serializers.IntegerField(help_text="Free plus reclaimable in the guest")
    disk_caches_kib = serializers.IntegerField()
    swap_in_kib = serializers.IntegerField()
    swap_out_kib = serializers.IntegerField()
    major_faults = serializers.IntegerField()
    minor_faults = serializers.IntegerField()
    last_update = serializers.IntegerField(help_text="Unix time of the guest's last report; 0 if never")


CHANGE = inline_serializer(
    "ComputeChange",
    {
        "command": serializers.CharField(),
        "live": SizingSerializer(allow_null=True),
        "config": SizingSerializer(allow_null=True),
    },
)


def _one_of(values: dict, current: str, maximum: str) -> str:
    given = [name for name in (current, maximum) if name in values]
    if len(given) != 1:
        raise ValidationError(
            {current: [_("Give either %(current)s or %(maximum)s.") % {"current": current, "maximum": maximum}]}
        )
    return given[0]


class _Compute(_OnVM):
    def changed(self, request: Request, change: ComputeChange) -> Response:
        state = compute_services.describe_compute(change.vm, actor=request.user)
        return Response(
            {
                "command": change.command,
                "live": asdict(state.live) if state.live else None,
                "config": asdict(state.config) if state.config else None,
            }
        )


class _Change(_Compute):
    """A body with the current value (`current`, with `live` / `config`) or with the maximum."""

    serializer_class: type[serializers.Serializer]
    privilege: str
    current: str
    maximum: str

    def set_current(self, vm, value, **arguments) -> ComputeChange:
        raise NotImplementedError

    def set_maximum(self, vm, value, **arguments) -> ComputeChange:
        raise NotImplementedError

    def change(self, request: Request, vm_id: int) -> Response:
        vm = self.vm(request, vm_id, self.privilege)
        values = _input(self.serializer_class, request)
        audit = {"actor": request.user, "client_address": client_address(request)}
        if _one_of(values, self.current, self.maximum) == self.maximum:
            return self.changed(request, self.set_maximum(vm, values[self.maximum], **audit))
        where = {"live": values.get("live"), "config": values.get("config")}
        return self.changed(request, self.set_current(vm, values[self.current], **where, **audit))


class VcpusView(_Change):
    serializer_class = VcpusSerializer
    privilege = compute_services.CPU_PRIVILEGE
    current, maximum = "count", "maximum"

    def set_current(self, vm, value, **arguments) -> ComputeChange:
        return compute_services.set_vcpus(vm, value, **arguments)

    def set_maximum(self, vm, value, **arguments) -> ComputeChange:
        return compute_services.set_max_vcpus(vm, value, **arguments)

    @extend_schema(request=VcpusSerializer, responses={200: CHANGE}, summary="virsh setvcpus [--maximum]")
    def post(self, request: Request, vm_id: int) -> Response:
        return self.change(request, vm_id)


class MemoryView(_Change):
    serializer_class = MemorySerializer
    privilege = compute_services.MEMORY_PRIVILEGE
    current, maximum = "mib", "maximum_mib"

    def set_current(self, vm, value, **arguments) -> ComputeChange:
        return compute_services.set_memory(vm, value, **arguments)

    def set_maximum(self, vm, value, **arguments) -> ComputeChange:
        return compute_services.set_max_memory(vm, value, **arguments)

    @extend_schema(request=MemorySerializer, responses={200: CHANGE}, summary="virsh setmem / setmaxmem")
    def post(self, request: Request, vm_id: int) -> Response:
        return self.change(request, vm_id)


class MemoryStatsView(_OnVM):
    @extend_schema(responses={200: MemoryStatsSerializer}, summary="virsh dommemstat (running VMs only)")
    def get(self, request: Request, vm_id: int) -> Response:
        stats = compute_services.read_memory_stats(self.vm(request, vm_id), actor=request.user)
        if stats is None:
            raise ServiceError(
                _("The VM is not running; memory statistics exist only while it runs."),
                status=409,
                code="invalid-state",
            )
        return Response(MemoryStatsSerializer(asdict(stats)).data)
