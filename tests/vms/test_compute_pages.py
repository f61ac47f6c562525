"""The VM page's "CPU and memory" card on libvirt's test:/// driver: what it shows, what its forms do."""

from django.test import Client
from django.urls import reverse

from kvmpanel.virt import compute


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_card_shows_the_values_the_forms_and_the_virsh_commands(world):
    page = client_for(world.alice).get(reverse("vms:detail", args=[world.running_vm.pk])).content.decode()
    assert 'id="vm-compute"' in page
    assert "1 online of 2 (maximum)" in page and "384 MiB of 512 MiB (maximum)" in page
    assert f"virsh setvcpus {world.running_vm.name} N --live --config" in page
    assert f"virsh setmem {world.running_vm.name} SIZE --live --config" in page
    assert reverse("vms:memory-stats", args=[world.running_vm.pk]) in page
    assert "compute-maximums" not in page  # maximums change only while shut off


def test_a_shut_off_vm_offers_the_maximums_and_no_statistics(world):
    page = client_for(world.alice).get(reverse("vms:detail", args=[world.vm.pk])).content.decode()
    assert f"virsh setvcpus {world.vm.name} N --maximum --config" in page
    assert f"virsh setmaxmem {world.vm.name} SIZE --config" in page
    assert "memory-stats" not in page


def test_a_viewer_sees_the_values_but_no_form(world):
    page = client_for(world.carol).get(reverse("vms:detail", args=[world.running_vm.pk])).content.decode()
    assert 'id="vm-compute"' in page and "compute-set-vcpus" not in page and "compute-set-memory" not in page


def test_the_vcpu_form_hot_plugs_and_comes_back_with_the_command(world):
    url = reverse("vms:compute-vcpus", args=[world.running_vm.pk])
    response = client_for(world.alice).post(url, {"value": 2, "live": "on"}, follow=True)
    assert f"virsh setvcpus {world.running_vm.name} 2 --live" in response.content.decode()
    assert compute.read_compute(world.host.uri, world.running_vm.uuid).live.vcpus_current == 2


def test_the_maximum_memory_form_changes_the_maximum(world):
    url = reverse("vms:compute-memory", args=[world.vm.pk])
    response = client_for(world.alice).post(url, {"value": 1024, "maximum": "on"}, follow=True)
    assert f"virsh setmaxmem {world.vm.name} 1024M --config" in response.content.decode()
    assert compute.read_compute(world.host.uri, world.vm.uuid).config.memory_max_kib == 1024 * 1024


def test_a_refusal_shows_in_place_for_htmx(world):
    url = reverse("vms:compute-vcpus", args=[world.running_vm.pk])
    response = client_for(world.alice).post(url, {"value": 5, "live": "on"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and response["X-Action-Result"] == "refused"
    assert "beyond the maximum of 2" in response.content.decode()
    bad = client_for(world.alice).post(url, {"value": "many"}, HTTP_HX_REQUEST="true")
    assert "whole number" in bad.content.decode()


def test_the_statistics_fragment_shows_dommemstat(world):
    fragment = client_for(world.carol).get(reverse("vms:memory-stats", args=[world.running_vm.pk])).content.decode()
    assert f"virsh dommemstat {world.running_vm.name}" in fragment
    stopped = client_for(world.alice).get(reverse("vms:memory-stats", args=[world.vm.pk])).content.decode()
    assert "not running" in stopped
