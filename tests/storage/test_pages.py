"""The storage pages: read from the inventory only, show capacity against allocation honestly, show
the virsh commands, and turn every form into a service call with a clear message back."""

import pytest
from django.test import Client
from django.urls import reverse

from apps.storage.models import StoragePool, StorageVolume
from kvmpanel.virt import storage as virt_storage
from kvmpanel.virt.connection import count_hypervisor_calls

MIB = 1 << 20


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_storage_page_lists_each_hosts_pools_without_asking_the_host(storage_world, django_assert_max_num_queries):
    client = client_for(storage_world.carol)
    with count_hypervisor_calls() as calls, django_assert_max_num_queries(12):
        page = client.get(reverse("storage:list"))
    assert page.status_code == 200
    assert calls.count == 0
    html = page.content.decode()
    assert "testhost" in html and reverse("storage:pool-detail", args=[StoragePool.objects.get().pk]) in html
    assert "virsh pool-list --all --details" in html
    assert "Add pool" not in html  # carol only looks


def test_a_stranger_sees_no_hosts_pools(storage_world):
    html = client_for(storage_world.bob).get(reverse("storage:list")).content.decode()
    assert "testhost" not in html


def test_the_pool_page_shows_capacity_and_allocation_of_each_volume(
    default_pool, storage_world, django_assert_max_num_queries
):
    StorageVolume.objects.filter(name="vm0001.qcow2").update(capacity_bytes=1 << 30, allocation_bytes=200 << 10)
    client = client_for(storage_world.root)
    with count_hypervisor_calls() as calls, django_assert_max_num_queries(12):
        page = client.get(reverse("storage:pool-detail", args=[default_pool.pk]))
    assert page.status_code == 200 and calls.count == 0
    html = page.content.decode()
    assert "1.0\xa0GB" in html and "200.0\xa0KB" in html and "sparse" in html
    assert 'title="1073741824 B"' in html and 'title="204800 B"' in html
    for command in ("virsh vol-list --pool default --details", "virsh vol-create-as default", "vol-upload --sparse"):
        assert command in html
    assert reverse("pool-upload-list", args=[default_pool.pk]) in html


def test_the_pool_page_offers_no_changes_to_a_viewer(default_pool, storage_world):
    html = client_for(storage_world.carol).get(reverse("storage:pool-detail", args=[default_pool.pk])).content.decode()
    assert "vm0001.qcow2" in html
    assert "data-volume-create" not in html and 'data-action="delete"' not in html and "data-upload" not in html


def test_a_volume_is_created_from_the_form(default_pool, storage_world):
    response = client_for(storage_world.root).post(
        reverse("storage:volume-create", args=[default_pool.pk]),
        {"name": "form.qcow2", "format": "qcow2", "capacity_0": "2", "capacity_1": "MiB"},
        follow=True,
    )
    assert response.status_code == 200
    assert "Volume form.qcow2 created" in response.content.decode()
    assert StorageVolume.objects.get(name="form.qcow2").capacity_bytes == 2 * MIB


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "a/b", "format": "qcow2", "capacity_0": "1", "capacity_1": "MiB"}, "A volume name is"),
        ({"name": "ok.raw", "format": "raw", "capacity_0": "0", "capacity_1": "MiB"}, "greater than zero"),
        ({"name": "ok.raw", "format": "raw", "capacity_0": "-3", "capacity_1": "GiB"}, "greater than zero"),
        ({"name": "ok.raw", "format": "raw", "capacity_0": "999999999", "capacity_1": "TiB"}, "not a real disk size"),
        ({"name": "ok.raw", "format": "raw", "capacity_0": "1000", "capacity_1": "TiB"}, "bytes free"),
        ({"name": "ok.raw", "format": "raw", "capacity_0": "ten", "capacity_1": "GiB"}, "whole number"),
    ],
)
def test_a_bad_volume_form_says_why_and_creates_nothing(default_pool, storage_world, data, message):
    response = client_for(storage_world.root).post(
        reverse("storage:volume-create", args=[default_pool.pk]), data, follow=True
    )
    assert message in response.content.decode()
    names = {v.name for v in virt_storage.list_pools(default_pool.host.uri, names=["default"])[0].volumes}
    assert names == {f"vm000{i}.qcow2" for i in range(4)}


def test_a_pool_is_created_from_the_add_page(storage_world):
    client = client_for(storage_world.root)
    assert client.get(reverse("storage:pool-add")).status_code == 200
    response = client.post(
        reverse("storage:pool-add"),
        {"host": storage_world.host.pk, "name": "added", "type": "dir", "path": "/srv/added", "autostart": "on"},
    )
    pool = StoragePool.objects.get(name="added")
    assert response.status_code == 302 and response["Location"] == reverse("storage:pool-detail", args=[pool.pk])
    refused = client.post(
        reverse("storage:pool-add"), {"host": storage_world.host.pk, "name": "x", "type": "dir", "path": "/etc"}
    )
    assert refused.status_code == 400
    assert "system directory" in refused.content.decode()


def test_pool_and_volume_buttons_call_their_services(default_pool, storage_world):
    client = client_for(storage_world.root)
    url = reverse("storage:pool-action", args=[default_pool.pk, "refresh"])
    assert "refreshed" in client.post(url, follow=True).content.decode()
    client.post(reverse("storage:pool-autostart", args=[default_pool.pk]), {"enabled": "1"})
    assert StoragePool.objects.get(pk=default_pool.pk).autostart is True
    volume = default_pool.volumes.get(name="vm0003.qcow2")
    grown = client.post(
        reverse("storage:volume-resize", args=[volume.pk]), {"capacity_0": "1", "capacity_1": "MiB"}, follow=True
    )
    assert "only grow" in grown.content.decode()
    deleted = client.post(reverse("storage:volume-delete", args=[volume.pk]), follow=True)
    assert "is a disk of VM vm0003" in deleted.content.decode()
    full = client.post(reverse("storage:pool-delete", args=[default_pool.pk]), follow=True)
    assert "not empty" in full.content.decode()
    assert client.post(reverse("storage:pool-action", args=[default_pool.pk, "explode"])).status_code == 404


def test_an_upload_in_progress_shows_with_its_progress_and_can_be_aborted(default_pool, storage_world):
    from apps.storage import transfers
    from apps.storage.models import StorageUpload

    upload = transfers.start_upload(default_pool, actor=storage_world.root, name="half.iso", size=4 * MIB)
    StorageUpload.objects.filter(pk=upload.pk).update(received_bytes=MIB)
    client = client_for(storage_world.root)
    html = client.get(reverse("storage:pool-detail", args=[default_pool.pk])).content.decode()
    assert 'data-upload="half.iso"' in html and "uploading: 25%" in html
    assert reverse("storage:upload-abort", args=[upload.pk]) in html
    response = client.post(reverse("storage:upload-abort", args=[upload.pk]), follow=True)
    assert "Upload of half.iso aborted" in response.content.decode()
    assert not StorageUpload.objects.exists()
    names = {v.name for v in virt_storage.list_pools(default_pool.host.uri, names=["default"])[0].volumes}
    assert "half.iso" not in names
