"""Live host updates: status changes (up, unreachable, error) for the host pages."""

from apps.core.live import send_after_commit

HOSTS_GROUP = "hosts"


def publish_host(host) -> None:
    payload = {"id": host.pk, "status": host.status, "status_message": host.status_message}
    send_after_commit([HOSTS_GROUP], {"type": "host.changed", "host_id": host.pk, "payload": payload})
