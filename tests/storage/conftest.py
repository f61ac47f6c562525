"""Storage fixtures: the test:/// host's pools synced into the inventory."""

import pytest

from apps.storage.models import StoragePool
from apps.storage.sync import sync_pools


@pytest.fixture
def storage_world(world):
    """The personas' world with the test host's pools in the inventory (pool "default" at /pool,
    holding the four VMs' 64 MiB qcow2 disks)."""
    sync_pools(world.host)
    return world


@pytest.fixture
def default_pool(storage_world) -> StoragePool:
    return StoragePool.objects.select_related("host").get(host=storage_world.host, name="default")
