"""The storage API: the same services as the pages, JSON errors with a detail, the one gate."""

import pytest
from django.test import Client
from django.urls import reverse

from apps.storage.models import StoragePool, StorageVolume
from kvmpanel.virt import storage as virt_storage
from kvmpanel.virt.connection import count_hypervisor_calls

MIB = 1 << 20


def api(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def volumes_url(pool) -> str:
    return reverse("pool-volume-list", args=[pool.pk])


def host_volume_names(pool) -> set[str]:
    return {volume.name for volume in virt_storage.list_pools(pool.host.uri, names=[pool.name])[0].volumes}


def test_pool_and_volume_lists_come_from_the_inventory(default_pool, storage_world, django_assert_max_num_queries):
    client = api(storage_world.carol)
    with count_hypervisor_calls() as calls:
        with django_assert_max_num_queries(7):  # session, user, grants (2), pools, count, ...
            pools = client.get(reverse("pool-list")).json()
        with django_assert_max_num_queries(7):
            volumes = client.get(volumes_url(default_pool)).json()
    assert calls.count == 0
    assert [pool["name"] for pool in pools["results"]] == ["default"]
    assert pools["results"][0]["available_bytes"] > 0
    assert volumes["count"] == 4
    first = volumes["results"][0]
    assert (first["format"], first["capacity_bytes"], first["pool_name"]) == ("qcow2", 64 * MIB, "default")
    assert {"allocation_bytes", "physical_bytes", "path"} <= set(first)


def test_a_stranger_sees_no_pools_and_cannot_reach_one(default_pool, storage_world):
    client = api(storage_world.bob)
    assert client.get(reverse("pool-list")).json()["count"] == 0
    assert client.get(reverse("pool-detail", args=[default_pool.pk])).status_code == 404
    assert client.get(volumes_url(default_pool)).status_code == 404


def test_pools_are_filtered_by_host(default_pool, storage_world):
    client = api(storage_world.root)
    assert client.get(reverse("pool-list"), {"host": storage_world.host.pk}).json()["count"] == 1
    assert client.get(reverse("pool-list"), {"host": storage_world.host.pk + 1}).json()["count"] == 0


def test_a_pool_is_created_started_stopped_and_deleted_through_the_api(storage_world):
    client = api(storage_world.root)
    created = client.post(
        reverse("pool-list"),
        {"host": storage_world.host.pk, "name": "api-pool", "path": "/srv/api-pool"},
        content_type="application/json",
    )
    assert created.status_code == 201, created.content
    pool_id = created.json()["id"]
    assert created.json()["active"] is True and created.json()["autostart"] is True
    assert client.post(reverse("pool-stop", args=[pool_id])).json()["active"] is False
    assert client.post(reverse("pool-start", args=[pool_id])).json()["active"] is True
    autostart = client.post(
        reverse("pool-autostart", args=[pool_id]), {"enabled": False}, content_type="application/json"
    )
    assert autostart.json()["autostart"] is False
    assert client.post(reverse("pool-refresh", args=[pool_id])).status_code == 200
    assert client.delete(reverse("pool-detail", args=[pool_id])).status_code == 204
    assert not StoragePool.objects.filter(pk=pool_id).exists()


@pytest.mark.parametrize(
    "body",
    [
        {"name": "a/b", "path": "/srv/x"},
        {"name": "x" * 300, "path": "/srv/x"},
        {"name": "<b>", "path": "/srv/x"},
        {"name": "ünï", "path": "/srv/x"},
        {"name": ["list"], "path": "/srv/x"},
        {"name": "ok", "path": "/srv/../etc"},
        {"name": "ok", "path": "/proc/self"},
        {"name": "ok", "path": 5},
        {"name": "ok", "path": "/srv/x", "type": "iscsi"},
    ],
)
def test_bad_pools_get_a_400_with_a_detail(storage_world, body):
    response = api(storage_world.root).post(
        reverse("pool-list"), {"host": storage_world.host.pk, **body}, content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["detail"]
    assert StoragePool.objects.count() == 1


def test_a_non_empty_pool_is_not_deleted_through_the_api(default_pool, storage_world):
    response = api(storage_world.root).delete(reverse("pool-detail", args=[default_pool.pk]))
    assert response.status_code == 409
    assert "not empty" in response.json()["detail"]


def test_a_volume_is_created_and_deleted_through_the_api(default_pool, storage_world):
    client = api(storage_world.root)
    created = client.post(
        volumes_url(default_pool),
        {"name": "api.raw", "format": "raw", "capacity_bytes": 4 * MIB},
        content_type="application/json",
    )
    assert created.status_code == 201, created.content
    assert (created.json()["format"], created.json()["capacity_bytes"]) == ("raw", 4 * MIB)
    detail = reverse("pool-volume-detail", args=[default_pool.pk, created.json()["id"]])
    assert client.get(detail).json()["name"] == "api.raw"
    assert client.delete(detail).status_code == 204
    assert "api.raw" not in host_volume_names(default_pool)


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x.raw", "capacity_bytes": 0},
        {"name": "x.raw", "capacity_bytes": -1},
        {"name": "x.raw", "capacity_bytes": 1e30},
        {"name": "x.raw", "capacity_bytes": 10**30},
        {"name": "x.raw", "capacity_bytes": "1G"},
        {"name": "x.raw", "capacity_bytes": True},
        {"name": "x.raw", "capacity_bytes": 1.5},
        {"name": "x.raw"},
        {"name": "a/b", "capacity_bytes": MIB},
        {"name": "..", "capacity_bytes": MIB},
        {"name": "<x>&", "capacity_bytes": MIB},
        {"name": "x" * 300, "capacity_bytes": MIB},
        {"name": "卷.qcow2", "capacity_bytes": MIB},
        {"name": "x.raw", "capacity_bytes": MIB, "format": "vmdk"},
    ],
)
def test_bad_volumes_get_a_400_with_a_detail(default_pool, storage_world, body):
    response = api(storage_world.root).post(volumes_url(default_pool), body, content_type="application/json")
    assert response.status_code == 400, response.content
    assert response.json()["detail"]
    assert host_volume_names(default_pool) == {f"vm000{i}.qcow2" for i in range(4)}
    assert StorageVolume.objects.count() == 4


def test_resize_wants_a_larger_whole_number(default_pool, storage_world):
    volume = default_pool.volumes.get(name="vm0003.qcow2")
    url = reverse("pool-volume-resize", args=[default_pool.pk, volume.pk])
    for size in (MIB, "2G", None, -1):
        response = api(storage_world.root).post(url, {"capacity_bytes": size}, content_type="application/json")
        assert response.status_code == 400 and response.json()["detail"]


def test_an_upload_session_starts_takes_raw_parts_and_aborts(default_pool, storage_world):
    client = api(storage_world.root)
    uploads = reverse("pool-upload-list", args=[default_pool.pk])
    started = client.post(uploads, {"name": "up.iso", "size": 4096}, content_type="application/json")
    assert started.status_code == 201, started.content
    body = started.json()
    assert (body["name"], body["size_bytes"], body["received_bytes"], body["part_bytes"]) == (
        "up.iso",
        4096,
        0,
        16 * MIB,
    )
    assert "up.iso" in host_volume_names(default_pool)
    assert [row["name"] for row in api(storage_world.carol).get(uploads).json()["results"]] == ["up.iso"]
    part = reverse("pool-upload-detail", args=[default_pool.pk, body["id"]])
    wrong_type = client.put(part + "?offset=0", {"file": "x"}, content_type="application/json")
    assert wrong_type.status_code == 415 and "application/octet-stream" in wrong_type.json()["detail"]
    empty = client.generic("PUT", part + "?offset=0", b"", CONTENT_TYPE="application/octet-stream")
    assert empty.status_code == 400 and empty.json()["detail"]
    late = client.put(part + "?offset=100", b"x" * 16, content_type="application/octet-stream")
    assert late.status_code == 409 and late.json()["code"] == "offset"
    refused = client.put(part + "?offset=0", b"x" * 4096, content_type="application/octet-stream")
    assert refused.status_code == 409  # the test driver cannot stream
    assert api(storage_world.carol).delete(part).status_code == 403
    assert client.delete(part).status_code == 204
    assert "up.iso" not in host_volume_names(default_pool)


@pytest.mark.parametrize("body", [{"name": "a/b", "size": 10}, {"name": "ok.iso", "size": 0}, {"name": "ok.iso"}])
def test_bad_upload_starts_get_a_400_with_a_detail(default_pool, storage_world, body):
    response = api(storage_world.root).post(
        reverse("pool-upload-list", args=[default_pool.pk]), body, content_type="application/json"
    )
    assert response.status_code == 400 and response.json()["detail"]
    assert host_volume_names(default_pool) == {f"vm000{i}.qcow2" for i in range(4)}


def test_downloads_need_storage_manage(default_pool, storage_world):
    volume = default_pool.volumes.get(name="vm0001.qcow2")
    url = reverse("pool-volume-download", args=[default_pool.pk, volume.pk])
    assert api(storage_world.bob).get(url).status_code == 404
    assert api(storage_world.carol).get(url).status_code == 403  # reading a disk is not just looking
    assert api(storage_world.root).get(url).status_code == 409  # the test driver cannot stream
