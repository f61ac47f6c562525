from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AccountsConfig(AppConfig):
    name = "apps.accounts"
    verbose_name = "Accounts and access"

    def ready(self) -> None:
        from apps.accounts.services import sync_builtin_roles

        post_migrate.connect(lambda sender, **kwargs: sync_builtin_roles(), sender=self, weak=False)
