"""Bad input gets {"detail": ...} with the right status; nothing is half made."""

from django.test import Client
from django.urls import reverse

from apps.vms.models import VirtualMachine


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_a_refused_action_answers_409_with_the_reason(world):
    response = client_for(world.alice).post(reverse("vm-start", args=[world.running_vm.pk]))
    assert response.status_code == 409
    assert response.json()["detail"] == "The VM is already running."


def test_a_bad_rename_answers_400_and_renames_nothing(world):
    response = client_for(world.alice).post(
        reverse("vm-rename", args=[world.vm.pk]), {"name": "no spaces please"}, content_type="application/json"
    )
    assert response.status_code == 400
    assert "VM name" in response.json()["detail"]
    assert VirtualMachine.objects.get(pk=world.vm.pk).name == "vm0002"


def test_a_missing_field_answers_400_with_the_field(world):
    response = client_for(world.alice).post(
        reverse("vm-rename", args=[world.vm.pk]), {}, content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["errors"]["name"]


def test_defining_bad_xml_answers_400_and_defines_nothing(world):
    before = VirtualMachine.objects.count()
    response = client_for(world.oscar).post(
        reverse("vm-define"), {"host": world.host.pk, "xml": "<domain><name>x"}, content_type="application/json"
    )
    assert response.status_code == 400
    assert "well-formed" in response.json()["detail"]
    assert VirtualMachine.objects.count() == before


def test_the_html_define_form_shows_the_error_in_the_form(world):
    response = client_for(world.oscar).post(
        reverse("vms:define"), {"host": world.host.pk, "xml_text": "<domain><name>bad name</name></domain>"}
    )
    assert response.status_code == 200
    assert b"data-form-error" in response.content
    assert b"VM name" in response.content


def test_a_refused_html_action_shows_the_message_in_place_for_htmx(world):
    response = client_for(world.alice).post(
        reverse("vms:action", args=[world.running_vm.pk, "start"]), HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    assert response["X-Action-Result"] == "refused"
    assert b"already running" in response.content


def test_an_unknown_action_is_404(world):
    assert client_for(world.root).post(reverse("vms:action", args=[world.vm.pk, "explode"])).status_code == 404


def test_the_delete_form_needs_the_name_typed(world):
    url = reverse("vms:delete", args=[world.vm.pk])
    response = client_for(world.alice).post(url, {"confirm_name": "wrong", "remove_disks": "on"})
    assert response.status_code == 200
    assert VirtualMachine.objects.filter(pk=world.vm.pk).exists()
    response = client_for(world.alice).post(url, {"confirm_name": "vm0002"})
    assert response.status_code == 302
    assert not VirtualMachine.objects.filter(pk=world.vm.pk).exists()


def test_return_urls_never_leave_the_panel(world):
    response = client_for(world.alice).post(
        reverse("vms:action", args=[world.vm.pk, "start"]), {"return_url": "https://evil.example/"}
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("vms:detail", args=[world.vm.pk])


def test_the_audit_takes_the_client_address_from_a_trusted_proxy_only(world, settings):
    from apps.audit.models import AuditEvent

    client = client_for(world.alice)
    client.post(reverse("vm-start", args=[world.vm.pk]), HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert AuditEvent.objects.get(verb="vm.start").client_address == "127.0.0.1"
    settings.KVMPANEL_TRUST_X_FORWARDED_FOR = True
    client.post(reverse("vm-force-off", args=[world.vm.pk]), HTTP_X_FORWARDED_FOR="203.0.113.9, 10.0.0.1")
    assert AuditEvent.objects.get(verb="vm.force-off").client_address == "203.0.113.9"
