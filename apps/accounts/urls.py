from django.contrib.auth import views as auth_views
from django.urls import path

from apps.accounts import role_views, token_views, user_views, views

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("account/language/", views.language, name="set-language"),
    path("account/tokens/", token_views.token_list, name="account-tokens"),
    path("account/tokens/<int:token_id>/revoke/", token_views.token_revoke, name="account-token-revoke"),
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
]
