from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AccountsConfig(AppConfig):
    name = "apps.accounts"
    verbose_name = "Accounts and access"

    def ready(self) -> None:
        from apps.accounts.live import connect_signals
        from apps.accounts.services import sync_builtin_roles

        connect_signals()

        post_migrate.connect(lambda sender, **kwargs: sync_builtin_roles(), sender=self, weak=False)
