from django.apps import AppConfig


class TwoFactorConfig(AppConfig):
    """Two-factor authentication and login lockout: its own app (label `two_factor`), so its tables
    and migrations stay apart from the rest of accounts."""

    name = "apps.accounts.otp"
    label = "two_factor"
    verbose_name = "Two-factor authentication"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from axes.signals import user_locked_out

        from apps.accounts.otp.lockout import audit_lockout

        user_locked_out.connect(audit_lockout, dispatch_uid="kvmpanel-audit-lockout")
