"""`/api/v1/tokens/`: a user's own API tokens (everyone's with `user.manage` on "/").

The digest is never serialized; the secret appears once, in the answer to the create request.
"""

from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from apps.accounts.models import ApiToken, User
from apps.accounts.permissions import has_privilege
from apps.accounts.services import create_api_token, revoke_api_token
from apps.core.errors import AccessDenied, ServiceError


class ApiTokenSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username", read_only=True)
    usable = serializers.BooleanField(read_only=True)

    class Meta:
        model = ApiToken
        fields = [
            "id",
            "user",
            "username",
            "name",
            "prefix",
            "privileges",
            "created_at",
            "expires_at",
            "last_used_at",
            "revoked_at",
            "usable",
        ]
        read_only_fields = fields


class ApiTokenCreateSerializer(serializers.Serializer):
    user = serializers.IntegerField(required=False, help_text="Default: yourself (others need user.manage on /)")
    name = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None)
    privileges = serializers.ListField(child=serializers.CharField(max_length=64), required=False, default=list)


class ApiTokenCreatedSerializer(ApiTokenSerializer):
    secret = serializers.CharField(read_only=True, help_text="Shown once; only its digest is stored")

    class Meta(ApiTokenSerializer.Meta):
        fields = [*ApiTokenSerializer.Meta.fields, "secret"]
        read_only_fields = fields


class ApiTokenViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    serializer_class = ApiTokenSerializer

    def get_queryset(self):
        tokens = ApiToken.objects.manageable_by(self.request.user).select_related("user")
        if self.action == "list":
            # Managers can look at someone else's with ?user=<id>; the list is one's own otherwise.
            wanted = self.request.query_params.get("user")
            return tokens.filter(user_id=wanted if wanted and wanted.isdigit() else self.request.user.pk)
        return tokens

    @extend_schema(request=ApiTokenCreateSerializer, responses={201: ApiTokenCreatedSerializer})
    def create(self, request: Request, *args, **kwargs) -> Response:
        data = ApiTokenCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        owner = request.user
        if data.validated_data.get("user") not in {None, request.user.pk}:
            if not has_privilege(request.user, None, "user.manage"):
                raise AccessDenied(_("You may only create tokens for yourself."))  # before saying who exists
            owner = User.objects.filter(pk=data.validated_data["user"]).first()
            if owner is None:
                raise ServiceError(_("No such user."), status=400, code="invalid")
        token, secret = create_api_token(
            actor=request.user,
            user=owner,
            name=data.validated_data["name"],
            expires_at=data.validated_data["expires_at"],
            privileges=data.validated_data["privileges"],
        )
        token.secret = secret
        return Response(ApiTokenCreatedSerializer(token).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: ApiTokenSerializer}, summary="Revoke the token now")
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, pk=None) -> Response:
        token = revoke_api_token(self.get_object(), actor=request.user)
        return Response(ApiTokenSerializer(token).data)
