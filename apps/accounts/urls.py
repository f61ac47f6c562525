from django.contrib.auth import views as auth_views
from django.urls import include, path

from apps.accounts import group_views, permission_views, project_views, role_views, token_views, user_views, views
from apps.accounts.otp import admin_views as two_factor_admin_views

urlpatterns = [
    # /login/ (password, then code), /login/verify/ and the user's own /account/2fa/ pages.
    path("", include("apps.accounts.otp.urls")),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("account/language/", views.language, name="set-language"),
    path("account/tokens/", token_views.token_list, name="account-tokens"),
    path("account/tokens/<int:token_id>/revoke/", token_views.token_revoke, name="account-token-revoke"),
    path("account/groups/", group_views.group_list, name="account-groups"),
    path("account/groups/<int:group_id>/delete/", group_views.group_delete, name="account-group-delete"),
    path(
        "account/groups/<int:group_id>/two-factor/",
        two_factor_admin_views.group_two_factor,
        name="account-group-two-factor",
    ),
    path("account/grants/", group_views.grant_list, name="account-grants"),
    path("account/grants/<int:grant_id>/revoke/", group_views.grant_revoke, name="account-grant-revoke"),
    path("account/effective/", permission_views.effective, name="account-effective"),
    path("account/projects/", project_views.project_list, name="account-projects"),
    path("account/projects/<int:project_id>/", project_views.project_detail, name="account-project"),
    path("account/projects/<int:project_id>/edit/", project_views.project_edit, name="account-project-edit"),
    path("account/projects/<int:project_id>/quota/", project_views.project_quota, name="account-project-quota"),
    path("account/projects/<int:project_id>/hosts/", project_views.project_hosts, name="account-project-hosts"),
    path("account/projects/<int:project_id>/delete/", project_views.project_delete, name="account-project-delete"),
    # The Permissions tab of VMs, hosts and projects (before the vms/ and hosts/ includes, which do not know it).
    *permission_views.tab_urls("vms/<int:object_id>/permissions/", "vms", "vm-permissions"),
    *permission_views.tab_urls("hosts/<int:object_id>/permissions/", "hosts", "host-permissions"),
    *permission_views.tab_urls("account/projects/<int:object_id>/permissions/", "projects", "project-permissions"),
    path("account/roles/", role_views.role_list, name="account-roles"),
    path("account/roles/<int:role_id>/delete/", role_views.role_delete, name="account-role-delete"),
    path("account/users/", user_views.user_list, name="account-users"),
    path("account/users/<int:user_id>/disable/", user_views.user_disable, name="account-user-disable"),
    path("account/users/<int:user_id>/enable/", user_views.user_enable, name="account-user-enable"),
    path(
        "account/users/<int:user_id>/reset-password/",
        user_views.user_reset_password,
        name="account-user-reset-password",
    ),
    path(
        "account/users/<int:user_id>/two-factor/",
        two_factor_admin_views.user_two_factor,
        name="account-user-two-factor",
    ),
    path(
        "account/users/<int:user_id>/reset-two-factor/",
        two_factor_admin_views.user_reset_two_factor,
        name="account-user-reset-two-factor",
    ),
    path("account/users/<int:user_id>/unlock/", two_factor_admin_views.user_unlock, name="account-user-unlock"),
]
