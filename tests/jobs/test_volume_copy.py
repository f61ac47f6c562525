"""The copy every clone, convert and move is made of, against lab host 1's real libvirtd + qemu-img."""

import os
import threading
import time

import pytest

from kvmpanel.virt import storage, volume_copy
from kvmpanel.virt.errors import HypervisorError
from tests.support.volumes import LAB_POOL, read_pattern

pytestmark = pytest.mark.lab


@pytest.fixture
def target_name(lab_host):
    names: list[str] = []

    def make(suffix: str) -> str:
        names.append(f"t-copy-{os.getpid()}-{len(names)}.{suffix}")
        return names[-1]

    yield make
    for name in names:
        volume_copy.discard_copy(lab_host.uri, LAB_POOL, name, wait_seconds=30)


def _allocation(path: str) -> int:
    return os.stat(path).st_blocks * 512


def test_a_copy_keeps_the_data_and_stays_sparse(lab_host, data_volume, target_name):
    source = data_volume(fmt="qcow2", capacity_bytes=256 << 20, data_bytes=32 << 20)
    reports: list[tuple[int, int]] = []
    path = volume_copy.copy_volume(
        lab_host.uri, source, LAB_POOL, target_name("qcow2"), progress=lambda done, total: reports.append((done, total))
    )
    assert read_pattern(path, "qcow2", 0, 32 << 20)
    assert _allocation(path) < 64 << 20  # 32 MiB of data in a 256 MiB disk: the holes stay holes
    assert reports[-1][0] == reports[-1][1] > 0


def test_a_copy_converts_qcow2_to_raw_and_back(lab_host, data_volume, target_name):
    source = data_volume(fmt="qcow2", data_bytes=8 << 20)
    raw = volume_copy.copy_volume(lab_host.uri, source, LAB_POOL, target_name("raw"), fmt="raw")
    assert read_pattern(raw, "raw", 0, 8 << 20)
    back = volume_copy.copy_volume(lab_host.uri, raw, LAB_POOL, target_name("qcow2"), fmt="qcow2")
    assert read_pattern(back, "qcow2", 0, 8 << 20)
    with open(back, "rb") as image:
        assert image.read(4) == b"QFI\xfb"


def test_progress_is_reported_while_a_large_copy_runs(lab_host, data_volume, target_name):
    source = data_volume(fmt="raw", capacity_bytes=1 << 30, data_bytes=768 << 20)
    reports: list[tuple[int, int]] = []
    volume_copy.copy_volume(
        lab_host.uri,
        source,
        LAB_POOL,
        target_name("raw"),
        progress=lambda done, total: reports.append((done, total)),
        poll_seconds=0.02,
    )
    assert any(0 < done < total for done, total in reports), reports
    assert [done for done, _ in reports] == sorted(done for done, _ in reports)


def test_a_cancelled_copy_leaves_no_volume_behind(lab_host, data_volume, target_name):
    source = data_volume(fmt="raw", capacity_bytes=1 << 30, data_bytes=768 << 20)
    name = target_name("raw")
    started = time.monotonic()
    with pytest.raises(HypervisorError) as refused:
        volume_copy.copy_volume(
            lab_host.uri,
            source,
            LAB_POOL,
            name,
            fmt="qcow2",  # a qemu-img copy, which cancel stops midway
            cancelled=lambda: time.monotonic() - started > 0.05,
            poll_seconds=0.02,
        )
    assert refused.value.code == "cancelled"
    assert storage.find_volume_in_pool(lab_host.uri, LAB_POOL, name) is None


def test_a_copy_refuses_a_target_name_that_exists(lab_host, data_volume):
    source = data_volume()
    existing = os.path.basename(source)
    with pytest.raises(HypervisorError) as refused:
        volume_copy.copy_volume(lab_host.uri, source, LAB_POOL, existing)
    assert refused.value.code == "exists"
    assert read_pattern(source, "qcow2", 0, 16 << 20)  # the existing volume is untouched


def test_discarding_a_copy_stops_it_and_removes_the_target(lab_host, data_volume, target_name):
    source = data_volume(fmt="raw", capacity_bytes=2 << 30, data_bytes=1536 << 20)
    name = target_name("raw")
    failures: list[Exception] = []

    def copy() -> None:
        try:
            volume_copy.copy_volume(lab_host.uri, source, LAB_POOL, name)
        except HypervisorError as error:
            failures.append(error)

    copier = threading.Thread(target=copy)
    copier.start()
    time.sleep(0.3)
    volume_copy.discard_copy(lab_host.uri, LAB_POOL, name, wait_seconds=30)
    copier.join(30)
    assert storage.find_volume_in_pool(lab_host.uri, LAB_POOL, name) is None


def test_only_a_local_daemon_copy_can_be_stopped():
    assert volume_copy.stop_copy("qemu+ssh://root@example.invalid/system", "/var/lib/libvirt/images/x.qcow2") is False
    assert volume_copy.stop_copy("qemu+tls://example.invalid/system", "/x.qcow2") is False
