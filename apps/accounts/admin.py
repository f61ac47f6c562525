from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from apps.accounts.models import ApiToken, Grant, Role, User


@admin.register(User)
class PanelUserAdmin(UserAdmin):
    fieldsets = (*UserAdmin.fieldsets, ("Preferences", {"fields": ("language",)}))


@admin.register(Role)
class RoleAdmin(admin.ModelAdmin):
    list_display = ["name", "builtin", "description"]

    def has_delete_permission(self, request, obj=None) -> bool:
        return obj is None or not obj.builtin


@admin.register(Grant)
class GrantAdmin(admin.ModelAdmin):
    list_display = ["user", "group", "role", "scope", "propagate", "created_at"]
    list_filter = ["role", "propagate"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["prefix", "user", "name", "created_at", "last_used_at", "expires_at", "revoked_at"]
    readonly_fields = ["prefix", "created_at", "last_used_at"]

    def has_add_permission(self, request) -> bool:
        return False  # tokens are created with `manage.py create_api_token`, which shows the secret once
