"""Audit API: `GET /api/v1/audit/` (the filters of the page) and `GET /api/v1/audit/{id}/`. Read-only:
no method changes or deletes an event (POST, PUT, PATCH and DELETE answer 405). Needs `audit.view` at `/`."""

from django.utils.dateparse import parse_date
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import serializers, viewsets

from apps.audit import selectors
from apps.audit.models import AuditEvent
from apps.core.errors import ServiceError


class AuditEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "at",
            "actor",
            "actor_name",
            "verb",
            "target_type",
            "target_id",
            "target_repr",
            "result",
            "message",
            "detail",
            "client_address",
        ]
        read_only_fields = fields


def _day(params, name: str):
    value = params.get(name, "")
    if not value:
        return None
    try:
        day = parse_date(value)
    except ValueError:
        day = None
    if day is None:
        raise ServiceError(_("`%(name)s` must be a date (YYYY-MM-DD).") % {"name": name}, code=f"invalid-{name}")
    return day


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter("actor", OpenApiTypes.STR, description="User name (exact, any case)"),
            OpenApiParameter("verb", OpenApiTypes.STR, description="vm.start exactly, or a prefix ending in . or *"),
            OpenApiParameter("target_type", OpenApiTypes.STR, description="vm, host, storagepool, ..."),
            OpenApiParameter("target", OpenApiTypes.STR, description="Object name contains, or type:id (vm:12)"),
            OpenApiParameter("result", OpenApiTypes.STR, description="ok, denied, refused, failed"),
            OpenApiParameter("since", OpenApiTypes.DATE, description="From this day on (included)"),
            OpenApiParameter("until", OpenApiTypes.DATE, description="Up to this day (included)"),
        ]
    )
)
class AuditEventViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = AuditEventSerializer

    def get_queryset(self):
        events = selectors.visible_events(self.request.user)
        params = self.request.query_params
        wanted = selectors.EventFilter(
            actor=params.get("actor", ""),
            verb=params.get("verb", ""),
            target_type=params.get("target_type", ""),
            target=params.get("target", ""),
            result=params.get("result", ""),
            since=_day(params, "since"),
            until=_day(params, "until"),
        )
        return selectors.filter_events(events, wanted)
