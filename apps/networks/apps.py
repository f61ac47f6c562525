from django.apps import AppConfig


class NetworksConfig(AppConfig):
    name = "apps.networks"
    verbose_name = "Networks"
