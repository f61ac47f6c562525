"""The storage inventory follows libvirt: pools and volumes appear, change and disappear with it."""

from apps.hosts import services as host_services
from apps.storage.models import HostStorage, StoragePool, StorageVolume
from apps.storage.sync import sync_pools, sync_volumes
from kvmpanel.virt import storage as virt_storage

MIB = 1 << 20


def test_the_sync_copies_each_pool_and_its_volumes(default_pool):
    assert (default_pool.type, default_pool.path, default_pool.active) == ("dir", "/pool", True)
    assert default_pool.capacity_bytes > default_pool.available_bytes > 0
    assert default_pool.observed_at is not None
    volumes = {v.name: v for v in default_pool.volumes.all()}
    assert set(volumes) == {f"vm000{i}.qcow2" for i in range(4)}
    disk = volumes["vm0000.qcow2"]
    assert (disk.path, disk.format, disk.capacity_bytes) == ("/pool/vm0000.qcow2", "qcow2", 64 * MIB)
    assert HostStorage.objects.get(host=default_pool.host).synced_at is not None


def test_volumes_and_pools_that_vanished_lose_their_rows(default_pool):
    host = default_pool.host
    kept = StorageVolume.objects.get(pool=default_pool, name="vm0001.qcow2")
    virt_storage.delete_volume(host.uri, "default", "vm0000.qcow2")
    virt_storage.create_volume(host.uri, "default", "new.raw", capacity_bytes=MIB, fmt="raw")
    sync_pools(host)
    names = set(default_pool.volumes.values_list("name", flat=True))
    assert "vm0000.qcow2" not in names and "new.raw" in names
    assert StorageVolume.objects.get(pool=default_pool, name="vm0001.qcow2").pk == kept.pk  # rows keep their ids
    virt_storage.stop_pool(host.uri, "default")
    sync_pools(host)
    default_pool.refresh_from_db()
    assert default_pool.active is False
    assert not default_pool.volumes.exists()  # unknown while inactive, so not shown as if they were there


def test_a_sync_limited_to_one_pool_leaves_the_others_alone(default_pool):
    host = default_pool.host
    other = StoragePool.objects.create(host=host, name="elsewhere", type="dir", path="/elsewhere")
    sync_pools(host, names=["default"])
    assert StoragePool.objects.filter(pk=other.pk).exists()
    sync_pools(host)
    assert not StoragePool.objects.filter(pk=other.pk).exists()


def test_refreshing_the_host_syncs_its_pools(world):
    assert not StoragePool.objects.exists()
    host_services.refresh_host(world.host, actor=world.root)
    assert StoragePool.objects.filter(host=world.host, name="default").exists()


def test_a_volume_sync_writes_only_the_named_volumes_and_the_pools_free_space(default_pool):
    host = default_pool.host
    untouched = StorageVolume.objects.get(pool=default_pool, name="vm0001.qcow2")
    StorageVolume.objects.filter(pk=untouched.pk).update(capacity_bytes=1)  # stale, and not named below
    virt_storage.delete_volume(host.uri, "default", "vm0000.qcow2")
    virt_storage.create_volume(host.uri, "default", "new.raw", capacity_bytes=MIB, fmt="raw")
    StoragePool.objects.filter(pk=default_pool.pk).update(available_bytes=0)
    sync_volumes(host, "default", ["new.raw", "vm0000.qcow2"])
    names = set(default_pool.volumes.values_list("name", flat=True))
    assert "vm0000.qcow2" not in names and "new.raw" in names
    assert StorageVolume.objects.get(pool=default_pool, name="new.raw").capacity_bytes == MIB
    assert StorageVolume.objects.get(pk=untouched.pk).capacity_bytes == 1  # the other volumes are not listed
    default_pool.refresh_from_db()
    assert default_pool.available_bytes > 0


def test_a_volume_sync_of_a_pool_without_a_row_syncs_that_whole_pool(world):
    assert sync_volumes(world.host, "default", ["vm0000.qcow2"]).name == "default"
    pool = StoragePool.objects.get(host=world.host, name="default")
    assert set(pool.volumes.values_list("name", flat=True)) == {f"vm000{i}.qcow2" for i in range(4)}
