"""Networks API: /api/v1/hosts/{id}/networks/ and below. The same services as the Networks page;
the host is looked up through the one gate (invisible: 404; visible without network.manage: 403,
checked by the services, which also audit the refusal). Input reaches the services as the client
sent it (JSON types included): they own every check, so the API and the page refuse alike.
"""

from dataclasses import asdict

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.permissions import get_object_or_deny
from apps.core.http import client_address
from apps.hosts.models import Host
from apps.networks import services
from kvmpanel.virt.network import MODES, NetworkInfo


class DhcpHostSerializer(serializers.Serializer):
    mac = serializers.CharField()
    ip = serializers.CharField()
    name = serializers.CharField()


class NetworkSerializer(serializers.Serializer):
    name = serializers.CharField()
    uuid = serializers.CharField()
    active = serializers.BooleanField()
    autostart = serializers.BooleanField()
    persistent = serializers.BooleanField()
    bridge = serializers.CharField()
    mode = serializers.CharField(help_text=" / ".join(MODES) + " (or another forward mode libvirt reports)")
    forward_mode = serializers.CharField(help_text='"" for isolated')
    address = serializers.CharField()
    netmask = serializers.CharField()
    prefix = serializers.IntegerField()
    subnet = serializers.CharField()
    dhcp_start = serializers.CharField()
    dhcp_end = serializers.CharField()
    static_hosts = DhcpHostSerializer(many=True)


class NetworkLeaseSerializer(serializers.Serializer):
    mac = serializers.CharField()
    ip = serializers.CharField()
    prefix = serializers.IntegerField()
    hostname = serializers.CharField()
    client_id = serializers.CharField()
    expiry_time = serializers.IntegerField(help_text="Unix time")


class NetworkCreateSerializer(serializers.Serializer):
    name = serializers.JSONField()
    mode = serializers.JSONField(help_text=" / ".join(MODES) + "; nat and route reach outside the host")
    bridge = serializers.JSONField(required=False, default="", help_text="Required for mode bridge")
    address = serializers.JSONField(required=False, default="", help_text="The host's IPv4 address on the network")
    prefix = serializers.JSONField(required=False, default=24)
    dhcp_start = serializers.JSONField(required=False, default="")
    dhcp_end = serializers.JSONField(required=False, default="")
    autostart = serializers.BooleanField(required=False, default=False)
    start = serializers.BooleanField(required=False, default=True)


class NetworkAutostartSerializer(serializers.Serializer):
    enabled = serializers.BooleanField()


class NetworkStaticHostSerializer(serializers.Serializer):
    mac = serializers.JSONField()
    ip = serializers.JSONField()
    hostname = serializers.JSONField(required=False, default="")


CHANGE = inline_serializer(
    "NetworkChange", {"command": serializers.CharField(), "network": NetworkSerializer(allow_null=True)}
)


def network_data(info: NetworkInfo) -> dict:
    return {**asdict(info), "mode": info.mode, "subnet": info.subnet}


def _input(serializer_class: type[serializers.Serializer], request: Request) -> dict:
    data = serializer_class(data=request.data)
    data.is_valid(raise_exception=True)
    return dict(data.validated_data)


def _changed(change: services.NetworkChange, status_code: int = status.HTTP_200_OK) -> Response:
    body = {"command": change.command, "network": network_data(change.network) if change.network else None}
    return Response(body, status=status_code)


class _OnHost(APIView):
    def host(self, request: Request, host_id: int, privilege: str | None = None) -> Host:
        """404 when invisible; 403 without `privilege` (the writes ask for network.manage)."""
        return get_object_or_deny(Host.objects.all(), request.user, host_id, privilege)

    def write(self, request: Request, host_id: int, name: str, service) -> Response:
        """`service(host, name)` (start, stop, delete) for a holder of network.manage."""
        host = self.host(request, host_id, services.PRIVILEGE)
        return _changed(service(host, name, actor=request.user, client_address=client_address(request)))


class NetworkListView(_OnHost):
    @extend_schema(responses={200: NetworkSerializer(many=True)}, summary="virsh net-list --all + net-dumpxml")
    def get(self, request: Request, host_id: int) -> Response:
        infos = services.list_networks(self.host(request, host_id), actor=request.user)
        return Response([network_data(info) for info in infos])

    @extend_schema(request=NetworkCreateSerializer, responses={201: CHANGE}, summary="virsh net-define; net-start")
    def post(self, request: Request, host_id: int) -> Response:
        host = self.host(request, host_id, services.PRIVILEGE)
        values = _input(NetworkCreateSerializer, request)
        change = services.create_network(host, actor=request.user, client_address=client_address(request), **values)
        return _changed(change, status.HTTP_201_CREATED)


class NetworkDetailView(_OnHost):
    @extend_schema(responses={200: NetworkSerializer}, summary="virsh net-info NAME + net-dumpxml NAME")
    def get(self, request: Request, host_id: int, name: str) -> Response:
        return Response(network_data(services.get_network(self.host(request, host_id), name, actor=request.user)))

    @extend_schema(responses={200: CHANGE}, summary="virsh net-destroy NAME; net-undefine NAME")
    def delete(self, request: Request, host_id: int, name: str) -> Response:
        return self.write(request, host_id, name, services.delete_network)


class NetworkStartView(_OnHost):
    @extend_schema(request=None, responses={200: CHANGE}, summary="virsh net-start NAME")
    def post(self, request: Request, host_id: int, name: str) -> Response:
        return self.write(request, host_id, name, services.start_network)


class NetworkStopView(_OnHost):
    @extend_schema(request=None, responses={200: CHANGE}, summary="virsh net-destroy NAME (refused while in use)")
    def post(self, request: Request, host_id: int, name: str) -> Response:
        return self.write(request, host_id, name, services.stop_network)


class NetworkAutostartView(_OnHost):
    @extend_schema(
        request=NetworkAutostartSerializer, responses={200: CHANGE}, summary="virsh net-autostart [--disable]"
    )
    def post(self, request: Request, host_id: int, name: str) -> Response:
        host = self.host(request, host_id, services.PRIVILEGE)
        enabled = _input(NetworkAutostartSerializer, request)["enabled"]
        change = services.set_autostart(host, name, enabled, actor=request.user, client_address=client_address(request))
        return _changed(change)


class NetworkLeasesView(_OnHost):
    @extend_schema(responses={200: NetworkLeaseSerializer(many=True)}, summary="virsh net-dhcp-leases NAME")
    def get(self, request: Request, host_id: int, name: str) -> Response:
        leases = services.list_leases(self.host(request, host_id), name, actor=request.user)
        return Response([asdict(lease) for lease in leases])


class StaticHostListView(_OnHost):
    @extend_schema(
        request=NetworkStaticHostSerializer,
        responses={201: CHANGE},
        summary="virsh net-update NAME add-last ip-dhcp-host",
    )
    def post(self, request: Request, host_id: int, name: str) -> Response:
        host = self.host(request, host_id, services.PRIVILEGE)
        values = _input(NetworkStaticHostSerializer, request)
        change = services.add_static_host(
            host, name, actor=request.user, client_address=client_address(request), **values
        )
        return _changed(change, status.HTTP_201_CREATED)


class StaticHostDetailView(_OnHost):
    @extend_schema(responses={200: CHANGE}, summary="virsh net-update NAME delete ip-dhcp-host")
    def delete(self, request: Request, host_id: int, name: str, mac: str) -> Response:
        host = self.host(request, host_id, services.PRIVILEGE)
        change = services.remove_static_host(
            host, name, mac, actor=request.user, client_address=client_address(request)
        )
        return _changed(change)
