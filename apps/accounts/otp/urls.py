from django.urls import path

from apps.accounts.otp import views

urlpatterns = [
    path("login/", views.PasswordStepView.as_view(), name="login"),
    path("login/verify/", views.code_step, name="login-verify"),
    path("account/password/", views.password_change, name="account-password"),
    path("account/2fa/", views.two_factor_page, name="account-2fa"),
    path("account/2fa/setup/", views.two_factor_setup, name="account-2fa-setup"),
    path("account/2fa/confirm/", views.two_factor_confirm, name="account-2fa-confirm"),
    path("account/2fa/recovery-codes/", views.two_factor_recovery_codes, name="account-2fa-recovery"),
    path("account/2fa/disable/", views.two_factor_disable, name="account-2fa-disable"),
]
