"""Job API: list and follow jobs, read a log incrementally, start one (`POST /api/v1/jobs/`), cancel one."""

from django.shortcuts import get_object_or_404
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from apps.accounts.permissions import get_object_or_deny
from apps.core.errors import ServiceError
from apps.core.http import client_address
from apps.hosts.models import Host
from apps.jobs import selectors, services
from apps.jobs.models import Job
from apps.vms.models import VirtualMachine


class JobSerializer(serializers.ModelSerializer):
    status = serializers.CharField(read_only=True, help_text="queued, running, succeeded, failed or cancelled")

    class Meta:
        model = Job
        fields = [
            "id",
            "kind",
            "vm",
            "host",
            "requested_by",
            "params",
            "result",
            "status",
            "percent",
            "bytes_done",
            "bytes_total",
            "phase",
            "error",
            "cancel_requested",
            "created_at",
            "started_at",
            "finished_at",
            "heartbeat_at",
        ]
        read_only_fields = fields


class JobDetailSerializer(JobSerializer):
    log = serializers.SerializerMethodField()

    class Meta(JobSerializer.Meta):
        fields = [*JobSerializer.Meta.fields, "log"]
        read_only_fields = fields

    def get_log(self, job: Job) -> list[dict]:
        return [{"id": line.pk, "at": line.at, "line": line.line} for line in job.log_lines.all()]


class LogLineSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="pk", help_text="Increasing: pass the last one as ?after= to read on")
    at = serializers.DateTimeField()
    line = serializers.CharField()


class JobLogSerializer(serializers.Serializer):
    job = serializers.IntegerField()
    status = serializers.CharField(help_text="The job's status now: stop reading once it is finished")
    lines = LogLineSerializer(many=True)
    last_id = serializers.IntegerField(help_text="The last line's id (or `after` when there is none): the next ?after=")
    more = serializers.BooleanField(help_text="More lines follow at once: read again with ?after=last_id")


class JobRequestSerializer(serializers.Serializer):
    kind = serializers.CharField(max_length=64)
    host = serializers.IntegerField(required=False)
    vm = serializers.IntegerField(required=False)
    params = serializers.DictField(required=False, default=dict)


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter("status", OpenApiTypes.STR, description="queued, running, succeeded, failed, cancelled"),
            OpenApiParameter("kind", OpenApiTypes.STR, description="e.g. volume.create"),
            OpenApiParameter("vm", OpenApiTypes.INT, description="Only jobs on this VM"),
        ]
    )
)
class JobViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    def get_serializer_class(self):
        return JobDetailSerializer if self.action == "retrieve" else JobSerializer

    def get_queryset(self):
        jobs = services.visible_jobs(self.request.user)
        params = self.request.query_params
        if params.get("status"):
            jobs = jobs.filter(status=params["status"])
        if params.get("kind"):
            jobs = jobs.filter(kind=params["kind"])
        vm = params.get("vm")
        if vm and vm.isdigit():
            jobs = jobs.filter(vm_id=int(vm))
        return jobs

    def _job(self, request: Request, pk) -> Job:
        return get_object_or_404(services.visible_jobs(request.user), pk=pk)

    @extend_schema(
        request=JobRequestSerializer,
        responses={202: inline_serializer("JobAccepted", {"job": JobSerializer()})},
        summary="Start a job (e.g. volume.create on a host)",
    )
    def create(self, request: Request, *args, **kwargs) -> Response:
        data = JobRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        vm = host = None
        if "vm" in values:
            vm = get_object_or_deny(VirtualMachine.objects.select_related("host"), request.user, values["vm"])
        if "host" in values:
            host = get_object_or_deny(Host.objects.all(), request.user, values["host"])
        job = services.enqueue_job(
            values["kind"],
            actor=request.user,
            vm=vm,
            host=host,
            params=values["params"],
            client_address=client_address(request),
        )
        return Response({"job": JobSerializer(job).data}, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        parameters=[OpenApiParameter("after", OpenApiTypes.INT, description="Only lines after this line id")],
        responses={200: JobLogSerializer},
        summary="Read a job's log incrementally",
    )
    @action(detail=True, methods=["get"])
    def log(self, request: Request, pk=None) -> Response:
        job = self._job(request, pk)
        after = request.query_params.get("after", "0")
        if not after.isdigit():
            raise ServiceError(_("`after` must be a line id (a whole number)."), code="invalid-after")
        lines, more = selectors.log_after(job, int(after))
        data = {
            "job": job.pk,
            "status": job.status,
            "lines": lines,
            "last_id": lines[-1].pk if lines else int(after),
            "more": more,
        }
        return Response(JobLogSerializer(data).data)

    @extend_schema(request=None, responses={200: JobSerializer}, summary="Cancel a job")
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk=None) -> Response:
        job = self._job(request, pk)
        job = services.request_cancel(job, actor=request.user, client_address=client_address(request))
        return Response(JobSerializer(job).data)
