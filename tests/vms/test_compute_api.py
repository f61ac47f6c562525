"""The vCPU and memory API on libvirt's test:/// driver: shapes, the gate, clear 4xx refusals."""

import pytest
from django.test import Client
from django.urls import reverse

from apps.accounts.models import Quota


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def post(user, name: str, vm, body: dict):
    return client_for(user).post(reverse(name, args=[vm.pk]), body, content_type="application/json")


def test_it_hot_plugs_a_vcpu_and_answers_with_both_definitions(world):
    response = post(world.root, "vm-vcpus", world.running_vm, {"count": 2, "live": True, "config": False})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["command"] == f"virsh setvcpus {world.running_vm.name} 2 --live"
    assert body["live"]["vcpus_current"] == 2 and body["config"]["vcpus_current"] == 1


def test_it_balloons_memory_and_changes_a_shut_off_maximum(world):
    response = post(world.alice, "vm-memory", world.running_vm, {"mib": 256})
    assert response.status_code == 200
    assert response.json()["live"]["memory_current_kib"] == 256 * 1024
    response = post(world.alice, "vm-memory", world.vm, {"maximum_mib": 1024})
    assert response.status_code == 200
    assert response.json()["config"]["memory_max_kib"] == 1024 * 1024
    assert response.json()["live"] is None


@pytest.mark.parametrize(
    ("name", "body", "status", "message"),
    [
        ("vm-vcpus", {"count": 3}, 400, "beyond the maximum of 2"),
        ("vm-vcpus", {"count": "two"}, 400, "whole number"),
        ("vm-vcpus", {"count": 0}, 400, "between 1 and"),
        ("vm-vcpus", {"maximum": 4}, 409, "shut off"),
        ("vm-vcpus", {}, 400, "either count or maximum"),
        ("vm-vcpus", {"count": 1, "maximum": 2}, 400, "either count or maximum"),
        ("vm-memory", {"mib": 4096}, 400, "beyond the maximum memory of 512 MiB"),
        ("vm-memory", {"mib": 1, "live": True}, 400, "between 64 and"),
        ("vm-memory", {"maximum_mib": 1024}, 409, "shut off"),
        ("vm-memory", {"mib": 256, "live": False, "config": False}, 400, "or both"),
    ],
)
def test_it_refuses_bad_input_with_a_clear_message(world, name, body, status, message):
    response = post(world.root, name, world.running_vm, body)
    assert response.status_code == status, response.content
    assert message in str(response.json())


def test_a_raised_maximum_over_quota_is_409_naming_the_limit(world):
    world.vm.owner = world.alice
    world.vm.save(update_fields=["owner"])
    Quota.objects.create(user=world.alice, max_vcpus=2)
    response = post(world.alice, "vm-vcpus", world.vm, {"maximum": 3})
    assert response.status_code == 409
    assert response.json()["code"] == "quota"
    assert "vCPUs 2 of 2 used" in response.json()["detail"]


def test_the_gate_hides_the_vm_from_strangers_and_refuses_viewers(world):
    assert post(world.bob, "vm-vcpus", world.vm, {"count": 2}).status_code == 404
    assert post(world.carol, "vm-memory", world.vm, {"mib": 128}).status_code == 403
    assert client_for(world.bob).get(reverse("vm-memory-stats", args=[world.running_vm.pk])).status_code == 404


def test_memory_stats_of_a_running_vm_and_409_when_shut_off(world):
    running = client_for(world.carol).get(reverse("vm-memory-stats", args=[world.running_vm.pk]))
    assert running.status_code == 200 and "actual_kib" in running.json()
    stopped = client_for(world.alice).get(reverse("vm-memory-stats", args=[world.vm.pk]))
    assert stopped.status_code == 409 and "not running" in stopped.json()["detail"]


def test_changes_refuse_get(world):
    assert client_for(world.root).get(reverse("vm-vcpus", args=[world.vm.pk])).status_code == 405
