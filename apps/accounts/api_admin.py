"""`/api/v1/users/`, `/api/v1/groups/`, `/api/v1/roles/`, `/api/v1/grants/` (issue #5).

Thin: every write is a service in `apps.accounts.admin_services`. Users and groups need `user.manage`
on "/"; roles are readable by everyone signed in (to know what they may delegate) and writable by
managers; grants follow the delegation rule. No password hash or token digest is ever serialized.
"""

from django.contrib.auth.models import Group
from django.db.models import Q
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, permissions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts import admin_services
from apps.accounts.explain import explanation_for, scope_for_request
from apps.accounts.models import Grant, Role, User
from apps.accounts.otp.api import GroupTwoFactorActions, UserTwoFactorActions
from apps.accounts.permissions import has_privilege
from apps.accounts.privileges import PRIVILEGES
from apps.core.errors import AccessDenied, ServiceError


class ManagesUsers(permissions.BasePermission):
    """`user.manage` on "/"; others get 403 (the list of accounts is not theirs to see)."""

    message = gettext_lazy("You need the user.manage privilege on / to do this.")

    def has_permission(self, request, view) -> bool:
        return has_privilege(request.user, None, admin_services.MANAGE)


class UserSerializer(serializers.ModelSerializer):
    groups = serializers.PrimaryKeyRelatedField(many=True, read_only=True)

    class Meta:
        model = User
        # Deliberately no "password": the hash never leaves the database.
        fields = [
            "id",
            "username",
            "email",
            "first_name",
            "last_name",
            "is_active",
            "is_superuser",
            "groups",
            "date_joined",
            "last_login",
        ]
        read_only_fields = fields


class UserCreateSerializer(serializers.Serializer):
    username = serializers.RegexField(r"^[\w.@+-]+\Z", max_length=150)
    email = serializers.EmailField(required=False, allow_blank=True, default="")
    first_name = serializers.CharField(max_length=150, required=False, allow_blank=True, default="")
    last_name = serializers.CharField(max_length=150, required=False, allow_blank=True, default="")
    password = serializers.CharField(required=False, write_only=True, help_text="Omit to have one generated")


class UserUpdateSerializer(serializers.Serializer):
    email = serializers.EmailField(required=False, allow_blank=True)
    first_name = serializers.CharField(max_length=150, required=False, allow_blank=True)
    last_name = serializers.CharField(max_length=150, required=False, allow_blank=True)


class PasswordSerializer(serializers.Serializer):
    password = serializers.CharField(required=False, write_only=True, help_text="Omit to have one generated")


class UserViewSet(
    UserTwoFactorActions, mixins.CreateModelMixin, mixins.UpdateModelMixin, viewsets.ReadOnlyModelViewSet
):
    serializer_class = UserSerializer
    permission_classes = [permissions.IsAuthenticated, ManagesUsers]
    queryset = User.objects.prefetch_related("groups").order_by("username")
    http_method_names = ["get", "post", "patch", "head", "options"]

    @extend_schema(request=UserCreateSerializer, responses={201: UserSerializer})
    def create(self, request: Request, *args, **kwargs) -> Response:
        data = UserCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user, generated = admin_services.create_user(actor=request.user, **data.validated_data)
        body = UserSerializer(user).data
        if generated:
            body["generated_password"] = generated  # shown once, never stored in clear
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(request=UserUpdateSerializer, responses={200: UserSerializer})
    def partial_update(self, request: Request, *args, **kwargs) -> Response:
        data = UserUpdateSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        user = admin_services.update_user(self.get_object(), actor=request.user, **data.validated_data)
        return Response(UserSerializer(user).data)

    def update(self, request: Request, *args, **kwargs) -> Response:
        return self.partial_update(request, *args, **kwargs)

    @extend_schema(request=None, responses={200: UserSerializer}, summary="Disable the user now")
    @action(detail=True, methods=["post"])
    def disable(self, request: Request, pk=None) -> Response:
        user = admin_services.set_user_active(self.get_object(), actor=request.user, active=False)
        return Response(UserSerializer(user).data)

    @extend_schema(request=None, responses={200: UserSerializer}, summary="Enable the user again")
    @action(detail=True, methods=["post"])
    def enable(self, request: Request, pk=None) -> Response:
        user = admin_services.set_user_active(self.get_object(), actor=request.user, active=True)
        return Response(UserSerializer(user).data)

    @extend_schema(request=PasswordSerializer, summary="Set a password, or generate one (shown once)")
    @action(detail=True, methods=["post"], url_path="reset-password")
    def reset_password(self, request: Request, pk=None) -> Response:
        data = PasswordSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        generated = admin_services.reset_password(
            self.get_object(), actor=request.user, password=data.validated_data.get("password")
        )
        return Response({"generated_password": generated} if generated else {"detail": _("Password changed.")})


class GroupSerializer(serializers.ModelSerializer):
    members = serializers.SerializerMethodField()

    class Meta:
        model = Group
        fields = ["id", "name", "members"]

    def get_members(self, group: Group) -> list[int]:
        return sorted(user.pk for user in group.user_set.all())


class GroupWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=150)
    members = serializers.ListField(child=serializers.IntegerField(), required=False)


class GroupViewSet(GroupTwoFactorActions, viewsets.ModelViewSet):
    serializer_class = GroupSerializer
    permission_classes = [permissions.IsAuthenticated, ManagesUsers]
    queryset = Group.objects.prefetch_related("user_set").order_by("name")
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    @extend_schema(request=GroupWriteSerializer, responses={201: GroupSerializer})
    def create(self, request: Request, *args, **kwargs) -> Response:
        data = GroupWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        group = admin_services.create_group(actor=request.user, **data.validated_data)
        return Response(GroupSerializer(group).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=GroupWriteSerializer, responses={200: GroupSerializer})
    def partial_update(self, request: Request, *args, **kwargs) -> Response:
        data = GroupWriteSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        group = admin_services.update_group(self.get_object(), actor=request.user, **data.validated_data)
        return Response(GroupSerializer(Group.objects.get(pk=group.pk)).data)

    def destroy(self, request: Request, *args, **kwargs) -> Response:
        admin_services.delete_group(self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class RoleSerializer(serializers.ModelSerializer):
    privileges = serializers.ListField(child=serializers.ChoiceField(choices=sorted(PRIVILEGES)))

    class Meta:
        model = Role
        fields = ["id", "name", "description", "privileges", "builtin"]
        read_only_fields = ["builtin"]


class RoleViewSet(viewsets.ModelViewSet):
    """Everyone signed in may read roles (the privilege picker); writes need `user.manage` on "/"."""

    serializer_class = RoleSerializer
    queryset = Role.objects.all()
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_permissions(self):
        if self.action in {"list", "retrieve"}:
            return [permissions.IsAuthenticated()]
        return [permissions.IsAuthenticated(), ManagesUsers()]

    def create(self, request: Request, *args, **kwargs) -> Response:
        data = RoleSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        role = admin_services.create_role(
            actor=request.user,
            name=data.validated_data["name"],
            privileges=data.validated_data["privileges"],
            description=data.validated_data.get("description", ""),
        )
        return Response(RoleSerializer(role).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request: Request, *args, **kwargs) -> Response:
        role = self.get_object()
        data = RoleSerializer(role, data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        role = admin_services.update_role(role, actor=request.user, **data.validated_data)
        return Response(RoleSerializer(role).data)

    def destroy(self, request: Request, *args, **kwargs) -> Response:
        admin_services.delete_role(self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class GrantSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username", read_only=True, default=None)
    group_name = serializers.CharField(source="group.name", read_only=True, default=None)
    role_name = serializers.CharField(source="role.name", read_only=True)

    class Meta:
        model = Grant
        fields = [
            "id",
            "user",
            "username",
            "group",
            "group_name",
            "role",
            "role_name",
            "scope",
            "propagate",
            "created_at",
            "created_by",
        ]
        read_only_fields = fields


class GrantCreateSerializer(serializers.Serializer):
    user = serializers.IntegerField(required=False, allow_null=True, default=None)
    group = serializers.IntegerField(required=False, allow_null=True, default=None)
    role = serializers.CharField(help_text="Role id or name")
    scope = serializers.CharField(max_length=100, default="/")
    propagate = serializers.BooleanField(default=True)


class GrantViewSet(mixins.CreateModelMixin, mixins.DestroyModelMixin, viewsets.ReadOnlyModelViewSet):
    """Managers see every grant; anyone else sees their own and those they made (others' are 404)."""

    serializer_class = GrantSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema generator has no user
            return Grant.objects.none()
        grants = Grant.objects.select_related("user", "group", "role").order_by("scope", "pk")
        user = self.request.user
        if not has_privilege(user, None, admin_services.MANAGE):
            grants = grants.filter(Q(user=user) | Q(created_by=user))
        scope = self.request.query_params.get("scope")
        return grants.filter(scope=scope) if scope else grants

    @extend_schema(request=GrantCreateSerializer, responses={201: GrantSerializer})
    def create(self, request: Request, *args, **kwargs) -> Response:
        data = GrantCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        wanted = values["role"]
        role = (
            Role.objects.filter(pk=int(wanted)).first()
            if wanted.isdigit()
            else Role.objects.filter(name=wanted).first()
        )
        if role is None:
            raise ServiceError(_("No such role."), status=400, code="invalid")
        # Delegation is decided before saying whether the subject exists, so nobody probes for accounts.
        if not admin_services.may_delegate(request.user, role, values["scope"]):
            raise AccessDenied()
        user = group = None
        if values["user"] is not None:
            user = User.objects.filter(pk=values["user"]).first()
            if user is None:
                raise ServiceError(_("No such user."), status=400, code="invalid")
        if values["group"] is not None:
            group = Group.objects.filter(pk=values["group"]).first()
            if group is None:
                raise ServiceError(_("No such group."), status=400, code="invalid")
        grant = admin_services.delegate_grant(
            actor=request.user, role=role, scope=values["scope"], user=user, group=group, propagate=values["propagate"]
        )
        return Response(GrantSerializer(grant).data, status=status.HTTP_201_CREATED)

    def destroy(self, request: Request, *args, **kwargs) -> Response:
        admin_services.revoke_grant(self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class EffectivePermissionsView(APIView):
    """`GET /api/v1/users/{id}/effective/?scope=/vms/3`: every privilege the user holds there or not, and why
    (apps/accounts/explain.py). One's own, or anyone's with user.manage on that scope or above."""

    @extend_schema(
        parameters=[OpenApiParameter("scope", str, description='"/", "/hosts/<id>", "/projects/<id>" or "/vms/<id>"')],
        responses={200: None},
    )
    def get(self, request: Request, user_id: int) -> Response:
        obj = scope_for_request(request.user, request.query_params.get("scope", "/"))
        user, explanation = explanation_for(request.user, obj, user_id=user_id)
        return Response({"user_id": user.pk, "object": None if obj is None else str(obj), **explanation.as_dict()})
