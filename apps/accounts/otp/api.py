"""2FA and lockout actions of `/api/v1/users/{id}/` and `/api/v1/groups/{id}/` (mixed into their viewsets,
which already require `user.manage` on "/"). Thin: services.py does the writes."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from apps.accounts.otp import services
from apps.accounts.otp.admin_views import annotate_groups, annotate_users


class RequiredSerializer(serializers.Serializer):
    required = serializers.BooleanField()


class UserTwoFactorSerializer(serializers.Serializer):
    required = serializers.BooleanField(source="two_factor_forced", help_text="Required of this user directly")
    required_effective = serializers.BooleanField(
        source="two_factor_required", help_text="Required directly or by one of the user's groups"
    )
    enabled = serializers.BooleanField(source="two_factor_enabled", help_text="An authenticator app is set up")
    locked_out = serializers.BooleanField(help_text="Locked out after failed logins from some address")


class GroupTwoFactorSerializer(serializers.Serializer):
    required = serializers.BooleanField(source="two_factor_required")


class UserTwoFactorActions:
    @extend_schema(
        methods=["GET"], request=None, responses={200: UserTwoFactorSerializer}, summary="The user's 2FA and lockout"
    )
    @extend_schema(
        methods=["POST"],
        request=RequiredSerializer,
        responses={200: UserTwoFactorSerializer},
        summary="Require 2FA of the user, or stop requiring it",
    )
    @action(detail=True, methods=["get", "post"], url_path="two-factor")
    def two_factor(self, request: Request, pk=None) -> Response:
        user = self.get_object()
        if request.method == "POST":
            data = RequiredSerializer(data=request.data)
            data.is_valid(raise_exception=True)
            services.set_user_two_factor_required(user, actor=request.user, required=data.validated_data["required"])
        return Response(UserTwoFactorSerializer(annotate_users([user])[0]).data)

    @extend_schema(request=None, responses={200: UserTwoFactorSerializer}, summary="Remove the user's 2FA (lost phone)")
    @action(detail=True, methods=["post"], url_path="reset-two-factor")
    def reset_two_factor(self, request: Request, pk=None) -> Response:
        user = self.get_object()
        services.reset_two_factor(user, actor=request.user)
        return Response(UserTwoFactorSerializer(annotate_users([user])[0]).data)

    @extend_schema(request=None, responses={200: UserTwoFactorSerializer}, summary="Lift the user's login lockout")
    @action(detail=True, methods=["post"])
    def unlock(self, request: Request, pk=None) -> Response:
        user = self.get_object()
        services.unlock_user(user, actor=request.user)
        return Response(UserTwoFactorSerializer(annotate_users([user])[0]).data)


class GroupTwoFactorActions:
    @extend_schema(methods=["GET"], request=None, responses={200: GroupTwoFactorSerializer})
    @extend_schema(
        methods=["POST"],
        request=RequiredSerializer,
        responses={200: GroupTwoFactorSerializer},
        summary="Require 2FA of the group's members, or stop requiring it",
    )
    @action(detail=True, methods=["get", "post"], url_path="two-factor")
    def two_factor(self, request: Request, pk=None) -> Response:
        group = self.get_object()
        if request.method == "POST":
            data = RequiredSerializer(data=request.data)
            data.is_valid(raise_exception=True)
            services.set_group_two_factor_required(group, actor=request.user, required=data.validated_data["required"])
        return Response(GroupTwoFactorSerializer(annotate_groups([group])[0]).data)
