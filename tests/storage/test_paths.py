"""The path rule other apps use for disks: paths come from pools only."""

import pytest

from apps.core.errors import ServiceError
from apps.storage import services
from apps.storage.models import StoragePool


def test_a_new_volume_gets_a_path_in_its_pool(default_pool):
    assert services.new_volume_path(default_pool.host, "default", "web01.qcow2") == "/pool/web01.qcow2"


@pytest.mark.parametrize(
    ("pool", "name", "status", "code"),
    [
        ("nowhere", "a.qcow2", 400, "no-pool"),
        ("default", "../../etc/shadow", 400, "invalid-name"),
        ("default", "a/b.qcow2", 400, "invalid-name"),
        ("default", "<x>.qcow2", 400, "invalid-name"),
        ("default", "x" * 300, 400, "invalid-name"),
        ("default", "vm0000.qcow2", 409, "exists"),
    ],
)
def test_a_new_volume_path_is_refused_for_bad_input(default_pool, pool, name, status, code):
    with pytest.raises(ServiceError) as refused:
        services.new_volume_path(default_pool.host, pool, name)
    assert (refused.value.status, refused.value.code) == (status, code)


def test_a_file_the_inventory_has_not_seen_yet_is_still_refused(default_pool):
    from kvmpanel.virt import storage as virt_storage

    virt_storage.create_volume(default_pool.host.uri, "default", "outside.raw", capacity_bytes=1 << 20, fmt="raw")
    assert not default_pool.volumes.filter(name="outside.raw").exists()
    with pytest.raises(ServiceError) as refused:
        services.new_volume_path(default_pool.host, "default", "outside.raw")
    assert refused.value.status == 409


def test_an_inactive_pool_gives_no_new_paths(default_pool):
    StoragePool.objects.filter(pk=default_pool.pk).update(active=False)
    with pytest.raises(ServiceError) as refused:
        services.new_volume_path(default_pool.host, "default", "a.qcow2")
    assert refused.value.code == "no-pool"


def test_a_path_in_a_pool_names_its_pool_and_volume(default_pool):
    assert services.volume_at_path(default_pool.host, "/pool/vm0001.qcow2") == ("default", "vm0001.qcow2")
    assert services.volume_at_path(default_pool.host, "/pool/vm0001.qcow2", must_exist=True) == (
        "default",
        "vm0001.qcow2",
    )
    assert services.volume_at_path(default_pool.host, "/pool/new.qcow2") == ("default", "new.qcow2")


@pytest.mark.parametrize(
    "path",
    [
        "/etc/shadow",
        "/pool/../etc/shadow",
        "/pool/./vm0001.qcow2",
        "/pool//vm0001.qcow2",
        "/pool/sub/vm0001.qcow2",
        "/pool/",
        "/pool",
        "pool/vm0001.qcow2",
        "",
        None,
        "/pool/a\nb",
        "/poolx/vm0001.qcow2",
    ],
)
def test_a_path_outside_every_pool_is_refused(default_pool, path):
    with pytest.raises(ServiceError) as refused:
        services.volume_at_path(default_pool.host, path)
    assert (refused.value.status, refused.value.code) == (400, "invalid-path")


def test_a_missing_volume_is_refused_when_it_must_exist(default_pool):
    with pytest.raises(ServiceError) as refused:
        services.volume_at_path(default_pool.host, "/pool/absent.qcow2", must_exist=True)
    assert refused.value.code == "no-volume"
