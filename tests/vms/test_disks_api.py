"""The disk and snapshot API on libvirt's test:/// driver: shapes, 202 jobs, clear 4xx refusals."""

import pytest
from django.test import Client
from django.urls import reverse

from apps.jobs.models import Job
from apps.storage.sync import sync_pools
from kvmpanel.virt import disks
from kvmpanel.virt import snapshots as virt_snapshots
from kvmpanel.virt.connection import call


@pytest.fixture(autouse=True)
def _storage_inventory(world):
    sync_pools(world.host)


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def pool_volumes(host) -> set[str]:
    return set(call(host.uri, lambda conn: conn.storagePoolLookupByName("default").listVolumes()))


def test_the_disk_list_shows_each_disk_with_pool_and_size(world):
    response = client_for(world.alice).get(reverse("vm-disk-list", args=[world.vm.pk]))
    assert response.status_code == 200
    assert response.json() == [
        {
            "target": "vda",
            "bus": "virtio",
            "device": "disk",
            "source": "/pool/vm0002.qcow2",
            "format": "qcow2",
            "readonly": False,
            "shareable": False,
            "pool": "default",
            "capacity_bytes": 64 << 20,
            "allocation_bytes": 64 << 20,
        }
    ]
    one = client_for(world.alice).get(reverse("vm-disk-detail", args=[world.vm.pk, "vda"]))
    assert one.json()["source"] == "/pool/vm0002.qcow2"
    assert client_for(world.alice).get(reverse("vm-disk-detail", args=[world.vm.pk, "vdz"])).status_code == 404


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"pool": "default", "name": "a/b.qcow2", "size_bytes": 1 << 20}, "volume name"),
        ({"pool": "default", "name": "<x>.qcow2", "size_bytes": 1 << 20}, "volume name"),
        ({"pool": "default", "name": "x" * 300, "size_bytes": 1 << 20}, "volume name"),
        ({"pool": "default", "name": "日本.qcow2", "size_bytes": 1 << 20}, "volume name"),
        ({"pool": "default", "name": "ok.qcow2", "size_bytes": 0}, "greater than zero"),
        ({"pool": "default", "name": "ok.qcow2", "size_bytes": -4096}, "greater than zero"),
        ({"pool": "default", "name": "ok.qcow2", "size_bytes": 10**30}, "not a real disk size"),
        ({"pool": "default", "name": "ok.qcow2", "size_bytes": "big"}, "whole number"),
        ({"pool": "default", "name": "ok.qcow2", "size_bytes": 1 << 20, "format": "vmdk"}, "qcow2 or raw"),
        ({"path": "/etc/passwd"}, "storage pool"),
    ],
)
def test_an_attach_with_bad_input_is_a_400_that_changes_nothing(world, body, message):
    before = pool_volumes(world.host)
    body = {**body, "persistent": True}
    response = client_for(world.alice).post(
        reverse("vm-disk-list", args=[world.vm.pk]), body, content_type="application/json"
    )
    assert response.status_code == 400, response.content
    assert message in response.json()["detail"]
    assert pool_volumes(world.host) == before


def test_an_attach_beyond_the_pools_space_is_refused(world):
    response = client_for(world.alice).post(
        reverse("vm-disk-list", args=[world.vm.pk]),
        {"pool": "default", "name": "big.qcow2", "size_bytes": 1 << 50, "persistent": True},
        content_type="application/json",
    )
    assert response.status_code == 400 and response.json()["code"] == "no-space"
    assert "big.qcow2" not in pool_volumes(world.host)


def test_growing_needs_a_bigger_size_and_the_disk_privilege(world):
    url = reverse("vm-disk-resize", args=[world.vm.pk, "vda"])
    shrink = client_for(world.alice).post(url, {"size_bytes": 1 << 20}, content_type="application/json")
    assert shrink.status_code == 400 and "only grow" in shrink.json()["detail"]
    assert (
        client_for(world.carol).post(url, {"size_bytes": 1 << 30}, content_type="application/json").status_code == 403
    )
    assert client_for(world.bob).post(url, {"size_bytes": 1 << 30}, content_type="application/json").status_code == 404
    assert client_for(world.alice).get(url).status_code == 405


def test_a_convert_answers_202_with_the_job(world):
    response = client_for(world.alice).post(
        reverse("vm-disk-convert", args=[world.vm.pk, "vda"]),
        {"format": "raw", "delete_source": True},
        content_type="application/json",
    )
    assert response.status_code == 202, response.content
    job = response.json()["job"]
    assert (job["kind"], job["status"], job["vm"]) == ("vm.disk.convert", "queued", world.vm.pk)
    assert job["params"]["command"].startswith("qemu-img convert")


def test_a_convert_with_a_non_boolean_delete_flag_is_refused(world):
    response = client_for(world.alice).post(
        reverse("vm-disk-convert", args=[world.vm.pk, "vda"]),
        {"format": "raw", "delete_source": "yes please"},
        content_type="application/json",
    )
    assert response.status_code == 400 and not Job.objects.exists()


def test_a_move_answers_202_and_a_second_job_on_the_vm_409(world):
    url = reverse("vm-disk-move", args=[world.vm.pk, "vda"])
    body = {"pool": "default", "name": "moved.qcow2"}
    assert client_for(world.alice).post(url, body, content_type="application/json").status_code == 202
    again = client_for(world.alice).post(url, {**body, "name": "moved2.qcow2"}, content_type="application/json")
    assert again.status_code == 409 and "already running" in again.json()["detail"]


def test_media_needs_a_cdrom_drive(world):
    response = client_for(world.alice).delete(reverse("vm-disk-media", args=[world.vm.pk, "vda"]))
    assert response.status_code == 400 and "not a CD-ROM" in response.json()["detail"]


def test_snapshots_are_listed_as_a_tree_and_changed_by_jobs(world):
    uri, uuid = world.host.uri, world.vm.uuid
    virt_snapshots.create_snapshot(uri, uuid, "base", "first")
    virt_snapshots.create_snapshot(uri, uuid, "next")
    client = client_for(world.alice)
    listed = client.get(reverse("vm-snapshot-list", args=[world.vm.pk])).json()
    assert [(s["name"], s["parent"], s["depth"], s["current"]) for s in listed] == [
        ("base", "", 0, False),
        ("next", "base", 1, True),
    ]
    assert client.get(reverse("vm-snapshot-detail", args=[world.vm.pk, "base"])).json()["description"] == "first"
    assert client.get(reverse("vm-snapshot-detail", args=[world.vm.pk, "ghost"])).status_code == 404

    created = client.post(
        reverse("vm-snapshot-list", args=[world.vm.pk]), {"name": "third"}, content_type="application/json"
    )
    assert created.status_code == 202 and created.json()["job"]["kind"] == "vm.snapshot.create"
    Job.objects.all().delete()
    reverted = client.post(reverse("vm-snapshot-revert", args=[world.vm.pk, "base"]))
    assert reverted.status_code == 202 and reverted.json()["job"]["params"]["name"] == "base"
    Job.objects.all().delete()
    deleted = client.delete(reverse("vm-snapshot-detail", args=[world.vm.pk, "next"]))
    assert deleted.status_code == 202 and deleted.json()["job"]["kind"] == "vm.snapshot.delete"
    Job.objects.all().delete()
    missing = client.post(reverse("vm-snapshot-revert", args=[world.vm.pk, "ghost"]))
    assert missing.status_code == 404 and "no snapshot named ghost" in missing.json()["detail"]


@pytest.mark.parametrize("name", ["a..b", "<b>", "x" * 64, "ünï", "", "a b"])
def test_a_snapshot_with_a_bad_name_is_a_400(world, name):
    response = client_for(world.alice).post(
        reverse("vm-snapshot-list", args=[world.vm.pk]), {"name": name}, content_type="application/json"
    )
    assert response.status_code == 400 and "snapshot name" in response.json()["detail"]
    assert virt_snapshots.list_snapshots(world.host.uri, world.vm.uuid) == ()


def test_a_snapshot_of_a_vm_with_a_raw_disk_is_a_409_saying_what_to_do(world):
    disks.repoint(world.host.uri, world.vm.uuid, "vda", "/pool/vm0002.qcow2", "raw")
    response = client_for(world.alice).post(
        reverse("vm-snapshot-list", args=[world.vm.pk]), {"name": "s"}, content_type="application/json"
    )
    assert response.status_code == 409
    assert response.json() == {
        "detail": "Internal snapshots need qcow2 disks; convert disk vda (raw) to qcow2 first.",
        "code": "raw-disk",
    }
