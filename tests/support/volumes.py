"""Volumes with data in them on lab host 1, for copy, convert and clone tests (a pytest plugin)."""

import contextlib
import subprocess
import uuid

import pytest

from kvmpanel.virt import storage
from kvmpanel.virt.errors import HypervisorError

LAB_POOL = "default"


def fill_volume(path: str, fmt: str, data_bytes: int, *, pattern: int = 0x5A) -> None:
    """Write `data_bytes` of a byte pattern at the start of the image, as a guest would (qemu-io)."""
    subprocess.run(
        ["qemu-io", "-f", fmt, "-c", f"write -P {pattern} 0 {data_bytes}", path],
        check=True,
        capture_output=True,
    )


def read_pattern(path: str, fmt: str, offset: int, length: int, *, pattern: int = 0x5A) -> bool:
    """Whether the image holds `pattern` in that range (qemu-io's read -P verifies it)."""
    result = subprocess.run(
        ["qemu-io", "-f", fmt, "-c", f"read -P {pattern} {offset} {length}", path], capture_output=True, text=True
    )
    return result.returncode == 0 and "Pattern verification failed" not in result.stdout


@pytest.fixture
def data_volume(lab_host):
    """Factory: a volume in lab host 1's `default` pool with data written into it; all deleted after."""
    made: list[str] = []

    def make(*, fmt: str = "qcow2", capacity_bytes: int = 64 << 20, data_bytes: int = 16 << 20) -> str:
        name = f"t-data-{uuid.uuid4().hex[:6]}.{fmt}"
        path = storage.create_volume(lab_host.uri, LAB_POOL, name, capacity_bytes=capacity_bytes, fmt=fmt)
        made.append(name)
        fill_volume(path, fmt, data_bytes)
        return path

    yield make
    for name in made:
        with contextlib.suppress(HypervisorError):
            storage.delete_volume(lab_host.uri, LAB_POOL, name)
