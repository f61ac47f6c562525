"""A real Celery worker, on the real Redis broker, runs the host refresh task."""

import pytest
from django.conf import settings

from apps.hosts.models import Host
from apps.hosts.tasks import refresh_host


@pytest.mark.django_db(transaction=True)
def test_a_worker_refreshes_a_host_and_reconciles_its_vms(worker, test_host):
    Host.objects.filter(pk=test_host.pk).update(cpu_count=0)
    test_host.vms.all().delete()
    result = refresh_host.apply_async(args=[test_host.pk], queue=settings.CELERY_TASK_DEFAULT_QUEUE).get(timeout=60)
    assert result == {"host": "testhost", "status": "up", "changed": 4, "vms": 4}
    assert Host.objects.get(pk=test_host.pk).cpu_count == 8
