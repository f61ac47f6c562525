"""VM API: the same services as the pages. Lookups go through the one gate (404 / 403)."""

from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from apps.accounts.permissions import get_object_or_deny, has_privilege
from apps.accounts.projects import creatable_hosts
from apps.console import services as console_services
from apps.console.choices import ConsoleKind
from apps.core.http import client_address
from apps.hosts.models import Host
from apps.jobs.api import JobSerializer
from apps.vms import provisioning, services
from apps.vms.choices import PowerState
from apps.vms.models import VirtualMachine
from apps.vms.os_variants import DEFAULT_VARIANT, OS_VARIANTS
from apps.vms.selectors import filter_vms, visible_vms


class VirtualMachineSerializer(serializers.ModelSerializer):
    host_name = serializers.CharField(source="host.name", read_only=True)
    state_label = serializers.SerializerMethodField()

    class Meta:
        model = VirtualMachine
        fields = [
            "id",
            "uuid",
            "name",
            "host",
            "host_name",
            "state",
            "state_label",
            "state_reason",
            "vcpus_current",
            "vcpus_max",
            "memory_current_kib",
            "memory_max_kib",
            "autostart",
            "persistent",
            "disks",
            "nics",
            "addresses",
            "console",
            "agent_connected",
            "owner",
            "project",
            "observed_at",
            "missing",
            "missing_since",
        ]
        read_only_fields = fields

    def get_state_label(self, vm: VirtualMachine) -> str:
        # One label table per serializer (per request), not Django's choices lookup per row.
        labels = self.context.get("state_labels")
        if labels is None:
            labels = self.context["state_labels"] = {value: str(label) for value, label in PowerState.choices}
        return labels.get(vm.state, vm.state)


class RenameSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=63)


class AutostartSerializer(serializers.Serializer):
    enabled = serializers.BooleanField()


class ConsoleRequestSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=ConsoleKind.choices, default=ConsoleKind.VNC)


class ConsoleTicketSerializer(serializers.Serializer):
    ticket = serializers.CharField(
        help_text="Single use, valid for seconds: present it as the WebSocket subprotocol "
        "`kvmpanel.ticket.<ticket>` (next to `binary`)."
    )
    url = serializers.CharField(help_text="The WebSocket URL to connect to (a path means this origin).")
    expires = serializers.DateTimeField()
    view_only = serializers.BooleanField()
    protocols = serializers.ListField(child=serializers.CharField())


class DefineSerializer(serializers.Serializer):
    host = serializers.IntegerField()
    xml = serializers.CharField(max_length=256 * 1024, trim_whitespace=False)


class CreateSerializer(serializers.Serializer):
    """`virt-install` as a job. Omitted hardware comes from the OS variant; the service checks every
    value against the host (names, sizes, pool space, ISO, network) and names the field it refuses."""

    host = serializers.IntegerField()
    name = serializers.CharField(trim_whitespace=False)
    os_variant = serializers.ChoiceField(choices=list(OS_VARIANTS), default=DEFAULT_VARIANT)
    virt_type = serializers.ChoiceField(
        choices=["kvm", "qemu"], required=False, help_text="kvm where the host has it, else qemu (TCG)"
    )
    machine = serializers.CharField(required=False, help_text="q35 or pc; default from the OS variant")
    disk_bus = serializers.CharField(required=False, help_text="virtio, sata, scsi or ide")
    nic_model = serializers.CharField(required=False, help_text="virtio, e1000e, e1000 or rtl8139")
    vcpus = serializers.IntegerField(required=False)
    max_vcpus = serializers.IntegerField(required=False, help_text="Hot-plug ceiling (virsh setvcpus --live)")
    memory_mib = serializers.IntegerField(required=False)
    max_memory_mib = serializers.IntegerField(required=False, help_text="Balloon ceiling (virsh setmem --live)")
    disk_pool = serializers.CharField()
    disk_size_bytes = serializers.IntegerField(required=False)
    disk_format = serializers.ChoiceField(choices=["qcow2", "raw"], default="qcow2")
    iso_pool = serializers.CharField(required=False, allow_blank=True)
    iso_volume = serializers.CharField(required=False, allow_blank=True)
    network = serializers.CharField(required=False, allow_blank=True)
    install = serializers.BooleanField(
        default=False,
        help_text="Wait for the installer on the ISO to power the VM off, eject it and boot from the disk",
    )
    install_timeout_seconds = serializers.IntegerField(required=False)
    project = serializers.IntegerField(
        required=False,
        allow_null=True,
        help_text="The project the VM goes in (its quota applies); needs vm.create there",
    )


class CloneSerializer(serializers.Serializer):
    name = serializers.CharField(
        required=False, allow_blank=True, trim_whitespace=False, help_text="Default: NAME-clone"
    )
    pool = serializers.CharField(
        required=False, allow_blank=True, help_text="Pool for the copies; default: each disk's own pool"
    )
    start = serializers.BooleanField(default=False)


JobAccepted = inline_serializer("VMJobAccepted", {"job": JobSerializer()})


def _lifecycle(name: str):
    @extend_schema(request=None, responses={200: VirtualMachineSerializer}, summary=f"{name} the VM")
    def perform(self, request: Request, pk=None) -> Response:
        lifecycle = services.LIFECYCLE_ACTIONS[name]
        vm = self._lookup(request, pk, lifecycle.privilege)
        vm = services.run_lifecycle(vm, name, actor=request.user, client_address=client_address(request))
        return Response(VirtualMachineSerializer(vm).data)

    perform.__name__ = name.replace("-", "_")
    return action(detail=True, methods=["post"], url_path=name, url_name=name)(perform)


@extend_schema(
    parameters=[
        OpenApiParameter("host", OpenApiTypes.INT, description="Only VMs on this host"),
        OpenApiParameter("state", OpenApiTypes.STR, description="running, shutoff, paused, ..."),
        OpenApiParameter("name", OpenApiTypes.STR, description="Name contains (case-insensitive)"),
    ]
)
class VirtualMachineViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = VirtualMachineSerializer

    def get_queryset(self):
        params = self.request.query_params
        host = params.get("host")
        return filter_vms(
            visible_vms(self.request.user),
            host=int(host) if host and host.isdigit() else None,
            state=params.get("state", ""),
            name=params.get("name", ""),
        )

    def _lookup(self, request: Request, pk, privilege: str | None = None) -> VirtualMachine:
        return get_object_or_deny(VirtualMachine.objects.select_related("host"), request.user, pk, privilege)

    start = _lifecycle("start")
    shutdown = _lifecycle("shutdown")
    force_off = _lifecycle("force-off")
    reboot = _lifecycle("reboot")
    suspend = _lifecycle("suspend")
    resume = _lifecycle("resume")

    @extend_schema(responses={(200, "application/xml"): OpenApiTypes.STR}, summary="virsh dumpxml --inactive")
    @action(detail=True, methods=["get"])
    def xml(self, request: Request, pk=None) -> HttpResponse:
        vm = self._lookup(request, pk)
        return HttpResponse(services.export_xml(vm, actor=request.user), content_type="application/xml")

    @extend_schema(request=RenameSerializer, responses={200: VirtualMachineSerializer})
    @action(detail=True, methods=["post"])
    def rename(self, request: Request, pk=None) -> Response:
        vm = self._lookup(request, pk, "vm.config")
        data = RenameSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        vm = services.rename_vm(
            vm, data.validated_data["name"], actor=request.user, client_address=client_address(request)
        )
        return Response(VirtualMachineSerializer(vm).data)

    @extend_schema(request=AutostartSerializer, responses={200: VirtualMachineSerializer})
    @action(detail=True, methods=["post"])
    def autostart(self, request: Request, pk=None) -> Response:
        vm = self._lookup(request, pk, "vm.config")
        data = AutostartSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        vm = services.set_autostart(
            vm, data.validated_data["enabled"], actor=request.user, client_address=client_address(request)
        )
        return Response(VirtualMachineSerializer(vm).data)

    @extend_schema(
        parameters=[OpenApiParameter("remove_disks", OpenApiTypes.BOOL, description="Also delete disk volumes")],
        responses={
            200: inline_serializer("Deleted", {"removed": serializers.ListField(child=serializers.CharField())})
        },
    )
    def destroy(self, request: Request, pk=None) -> Response:
        vm = self._lookup(request, pk, "vm.delete")
        remove = request.query_params.get("remove_disks", "").lower() in {"1", "true", "yes"}
        removed = services.delete_vm(
            vm, actor=request.user, remove_disks=remove, client_address=client_address(request)
        )
        return Response({"removed": removed})

    @extend_schema(
        request=ConsoleRequestSerializer,
        responses={201: ConsoleTicketSerializer},
        summary="A single-use console ticket (vm.console, or vm.console.view for view only)",
    )
    @action(detail=True, methods=["post"])
    def console(self, request: Request, pk=None) -> Response:
        vm = self._lookup(request, pk)
        data = ConsoleRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        # A browser session binds the ticket to that session; an API token client has none.
        session_key = request.session.session_key if request.auth is None else None
        issued = console_services.issue_ticket(
            vm,
            actor=request.user,
            kind=data.validated_data["kind"],
            session_key=session_key,
            client_address=client_address(request),
        )
        body = {
            "ticket": issued.ticket,
            "url": issued.url,
            "expires": issued.expires,
            "view_only": issued.view_only,
            "protocols": ["binary", console_services.TICKET_PROTOCOL_PREFIX + issued.ticket],
        }
        return Response(ConsoleTicketSerializer(body).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=CreateSerializer, responses={202: JobAccepted}, summary="Create a VM (virt-install), a job")
    def create(self, request: Request) -> Response:
        data = CreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        params = dict(data.validated_data)
        host_id = params.pop("host")
        # A host a self-service user may create on through a project placed there, though unseen;
        # otherwise 404 for a host they cannot see, and enqueue_job's 403 for one they only see.
        host = creatable_hosts(request.user).filter(pk=host_id).first()
        if host is None:
            host = get_object_or_deny(Host.objects.all(), request.user, host_id)
        job = provisioning.create_vm(host, params, actor=request.user, client_address=client_address(request))
        return Response({"job": JobSerializer(job).data}, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=CloneSerializer, responses={202: JobAccepted}, summary="Clone a VM (virt-clone), a job")
    @action(detail=True, methods=["post"])
    def clone(self, request: Request, pk=None) -> Response:
        vm = self._lookup(request, pk, "vm.clone")
        data = CloneSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        job = provisioning.clone_vm(
            vm, dict(data.validated_data), actor=request.user, client_address=client_address(request)
        )
        return Response({"job": JobSerializer(job).data}, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        request=DefineSerializer, responses={201: VirtualMachineSerializer}, summary="virsh define --validate"
    )
    @action(detail=False, methods=["post"])
    def define(self, request: Request) -> Response:
        data = DefineSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        host = get_object_or_deny(Host.objects.all(), request.user, data.validated_data["host"])
        if not has_privilege(request.user, host, "vm.create"):
            raise PermissionDenied
        vm = services.define_vm(
            host, data.validated_data["xml"], actor=request.user, client_address=client_address(request)
        )
        return Response(VirtualMachineSerializer(vm).data, status=status.HTTP_201_CREATED)
