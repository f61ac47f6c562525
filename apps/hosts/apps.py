from django.apps import AppConfig


class HostsConfig(AppConfig):
    name = "apps.hosts"
    verbose_name = "Hosts"

    def ready(self) -> None:
        from django.conf import settings

        from kvmpanel.virt.connection import pool

        pool.configure(
            keepalive_interval=settings.KVMPANEL_LIBVIRT_KEEPALIVE_INTERVAL,
            keepalive_count=settings.KVMPANEL_LIBVIRT_KEEPALIVE_COUNT,
            max_backoff=settings.KVMPANEL_RECONNECT_MAX_SECONDS,
        )
