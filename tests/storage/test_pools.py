"""Pools on a test:/// host: create (dir only), start, stop, autostart, refresh, delete (empty only),
every bad input refused with a clear message and nothing changed, and only storage managers allowed."""

import pytest

from apps.audit.models import AuditEvent
from apps.core.errors import AccessDenied, ServiceError
from apps.storage import services
from apps.storage.models import HostStorage, StoragePool
from kvmpanel.virt import storage as virt_storage


def host_pool_names(host) -> set[str]:
    return {pool.name for pool in virt_storage.list_pools(host.uri, with_volumes=False)}


def create(world, name="scratch", path="/srv/scratch", **extra) -> StoragePool:
    return services.create_pool(world.host, actor=world.root, name=name, path=path, **extra)


def test_a_dir_pool_is_defined_built_started_and_autostarted(storage_world):
    pool = create(storage_world)
    assert (pool.name, pool.type, pool.path, pool.active, pool.autostart) == (
        "scratch",
        "dir",
        "/srv/scratch",
        True,
        True,
    )
    assert pool.uuid and pool.observed_at
    info = virt_storage.pool_info(storage_world.host.uri, "scratch")
    assert (info.active, info.autostart, info.persistent) == (True, True, True)
    assert AuditEvent.objects.filter(verb="pool.create", result="ok", target_id=str(pool.pk)).exists()


def test_a_pool_can_be_created_without_autostart(storage_world):
    assert create(storage_world, autostart=False).autostart is False


def test_start_stop_autostart_and_refresh_follow_the_host(storage_world):
    pool = create(storage_world)
    uri = storage_world.host.uri
    pool = services.stop_pool(pool, actor=storage_world.root)
    assert pool.active is False and virt_storage.pool_info(uri, "scratch").active is False
    with pytest.raises(ServiceError) as refused:
        services.stop_pool(pool, actor=storage_world.root)
    assert refused.value.status == 409
    with pytest.raises(ServiceError):
        services.refresh_pool(pool, actor=storage_world.root)
    pool = services.start_pool(pool, actor=storage_world.root)
    assert pool.active is True
    pool = services.set_pool_autostart(pool, False, actor=storage_world.root)
    assert pool.autostart is False and virt_storage.pool_info(uri, "scratch").autostart is False
    pool = services.refresh_pool(pool, actor=storage_world.root)
    verbs = list(AuditEvent.objects.filter(target_type="storagepool").values_list("verb", flat=True))
    assert {"pool.stop", "pool.start", "pool.autostart", "pool.refresh"} <= set(verbs)


def test_an_empty_pool_is_deleted_and_a_full_one_is_not(storage_world, default_pool):
    with pytest.raises(ServiceError) as refused:
        services.delete_pool(default_pool, actor=storage_world.root)
    assert refused.value.status == 409
    assert "not empty" in refused.value.message and "4 volume" in refused.value.message
    assert "default" in host_pool_names(storage_world.host)
    assert StoragePool.objects.filter(pk=default_pool.pk).exists()
    pool = create(storage_world)
    services.delete_pool(pool, actor=storage_world.root)
    assert "scratch" not in host_pool_names(storage_world.host)
    assert not StoragePool.objects.filter(name="scratch").exists()
    assert AuditEvent.objects.filter(verb="pool.delete", result="ok").exists()


def test_an_inactive_empty_pool_is_deleted_too(storage_world):
    pool = services.stop_pool(create(storage_world), actor=storage_world.root)
    services.delete_pool(pool, actor=storage_world.root)
    assert "scratch" not in host_pool_names(storage_world.host)


@pytest.mark.parametrize(
    ("name", "path", "status"),
    [
        ("a/b", "/srv/x", 400),
        ("..", "/srv/x", 400),
        ("a..b", "/srv/x", 400),
        ("<pool>", "/srv/x", 400),
        ("a&b", "/srv/x", 400),
        ("x" * 300, "/srv/x", 400),
        ("bassin-é", "/srv/x", 400),
        ("", "/srv/x", 400),
        (None, "/srv/x", 400),
        (42, "/srv/x", 400),
        ("ok", "relative/dir", 400),
        ("ok", "/", 400),
        ("ok", "/etc", 400),
        ("ok", "/etc/pools", 400),
        ("ok", "/usr/lib/images", 400),
        ("ok", "/var/lib/libvirt", 400),
        ("ok", "/srv/a/../b", 400),
        ("ok", "/srv//b", 400),
        ("ok", "/srv/b/", 400),
        ("ok", "/srv/./b", 400),
        ("ok", "/srv/<b>", 400),
        ("ok", "/srv/a b", 400),
        ("ok", "/srv/café", 400),
        ("ok", "/srv/" + "x" * 2000, 400),
        ("ok", "", 400),
        ("ok", None, 400),
        ("default", "/srv/x", 409),  # the name is taken
        ("ok", "/pool", 409),  # pool "default" is there
        ("ok", "/pool/inside", 409),  # inside pool "default"
    ],
)
def test_bad_pool_requests_are_refused_and_change_nothing(storage_world, name, path, status):
    before = host_pool_names(storage_world.host)
    rows = StoragePool.objects.count()
    with pytest.raises(ServiceError) as refused:
        create(storage_world, name=name, path=path)
    assert refused.value.status == status
    assert refused.value.message
    assert host_pool_names(storage_world.host) == before
    assert StoragePool.objects.count() == rows


def test_a_pool_around_another_pool_is_refused(storage_world):
    create(storage_world, name="inner", path="/srv/outer/inner")
    with pytest.raises(ServiceError) as refused:
        create(storage_world, name="outer", path="/srv/outer")
    assert refused.value.status == 409
    assert "inner" in refused.value.message


def test_only_directory_pools_are_created_and_the_others_are_named(storage_world):
    HostStorage.objects.filter(host=storage_world.host).update(pool_types=["dir", "fs", "logical", "netfs"])
    with pytest.raises(ServiceError) as refused:
        create(storage_world, pool_type="logical")
    assert refused.value.status == 400
    assert "fs, logical, netfs" in refused.value.message
    assert "scratch" not in host_pool_names(storage_world.host)


@pytest.mark.parametrize("persona", ["bob", "carol", "oscar"])
def test_only_storage_managers_change_pools(storage_world, default_pool, persona):
    user = getattr(storage_world, persona)
    attempts = [
        lambda: services.create_pool(storage_world.host, actor=user, name="x", path="/srv/x"),
        lambda: services.stop_pool(default_pool, actor=user),
        lambda: services.set_pool_autostart(default_pool, True, actor=user),
        lambda: services.refresh_pool(default_pool, actor=user),
        lambda: services.delete_pool(default_pool, actor=user),
        lambda: services.refresh_host_pools(storage_world.host, actor=user),
    ]
    for attempt in attempts:
        with pytest.raises(AccessDenied):
            attempt()
    assert host_pool_names(storage_world.host) == {"default"}
    assert virt_storage.pool_info(storage_world.host.uri, "default").active
    assert AuditEvent.objects.filter(result="denied", actor=user).count() == len(attempts)
