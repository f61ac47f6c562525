"""Adding and probing hosts; the URI is vetted before anything connects."""

import pytest
from django.test import Client
from django.urls import reverse

from apps.audit.models import AuditEvent
from apps.core.errors import AccessDenied, ServiceError
from apps.hosts import services
from apps.hosts.models import Host
from kvmpanel.virt.connection import pool
from tests.support.testnode import write_test_node


@pytest.mark.parametrize(
    "uri",
    [
        "xen:///system",
        "qemu+ssh://root@host/system?command=/bin/sh",
        "qemu+ssh://root@host/system?netcat=/tmp/x",
        "qemu+ext:///system?command=/bin/sh",
        "qemu:///etc/passwd",
        "http://example.com/",
    ],
)
def test_it_refuses_uris_that_could_run_a_program_or_are_not_libvirt(world, uri):
    with pytest.raises(ServiceError):
        services.add_host(actor=world.root, name="x", uri=uri)
    assert not Host.objects.filter(name="x").exists()


def test_it_adds_a_host_after_probing_it(world, tmp_path):
    uri = write_test_node(tmp_path / "extra.xml", vms=1)
    host = services.add_host(actor=world.root, name="extra", uri=uri)
    assert host.status == "up" and host.cpu_count == 8 and host.hypervisor == "TEST"
    assert not host.kvm_usable and host.accelerator == "TCG"
    assert AuditEvent.objects.filter(verb="host.add", target_id=str(host.pk)).exists()
    pool.drop(uri)


def test_an_unreachable_host_is_not_added_and_the_message_says_why(world, tmp_path):
    with pytest.raises(ServiceError) as failed:
        services.add_host(actor=world.root, name="ghost", uri=f"qemu+unix:///system?socket={tmp_path}/none")
    assert failed.value.status == 503
    assert "unreachable" in failed.value.message
    assert not Host.objects.filter(name="ghost").exists()
    assert AuditEvent.objects.filter(verb="host.add", result="failed").exists()


def test_only_host_managers_add_hosts(world, tmp_path):
    with pytest.raises(AccessDenied):
        services.add_host(actor=world.oscar, name="nope", uri=write_test_node(tmp_path / "n.xml", vms=0))


def test_the_add_form_shows_refusals_in_the_form(world):
    client = Client()
    client.force_login(world.root)
    response = client.post(reverse("hosts:add"), {"name": "bad", "uri": "xen:///system"})
    assert response.status_code == 200
    assert b"Unsupported URI scheme" in response.content


def test_a_duplicate_host_is_refused(world):
    with pytest.raises(ServiceError, match="already registered"):
        services.add_host(actor=world.root, name="again", uri=world.host.uri)


def test_audit_events_cannot_be_changed_or_deleted(world):
    event = AuditEvent.objects.first()
    event.message = "rewritten"
    with pytest.raises(RuntimeError):
        event.save()
    with pytest.raises(RuntimeError):
        event.delete()


def test_a_host_with_vms_cannot_be_removed(world):
    with pytest.raises(ServiceError, match="still has VMs"):
        services.remove_host(world.host, actor=world.root)
    assert Host.objects.filter(pk=world.host.pk).exists()


def test_removing_a_host_forgets_it_and_its_grants_but_not_its_domains(world):
    from apps.accounts.models import Grant
    from kvmpanel.virt import domain

    world.host.vms.update(missing=True)
    services.remove_host(world.host, actor=world.root)
    assert not Host.objects.filter(pk=world.host.pk).exists()
    assert not Grant.objects.filter(scope__startswith="/vms/").exists()
    assert not Grant.objects.filter(scope=f"/hosts/{world.host.pk}").exists()
    assert AuditEvent.objects.filter(verb="host.remove").exists()
    assert len(domain.list_domains(world.host.uri)) == 4  # libvirt itself is untouched
