"""Storage on lab host 1 (a real libvirtd): a dir pool's whole life, sparse raw and qcow2 volumes that
grow, uploads through the real panel (daphne) that download back byte-identical, and refusals that
leave nothing behind. Every pool and volume made here is removed again."""

import contextlib
import hashlib
import http.client
import io
import json
import os
import shutil
import subprocess
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.accounts.models import Role
from apps.accounts.services import create_api_token, grant_role
from apps.core.errors import ServiceError
from apps.storage import services, transfers
from apps.storage.models import StoragePool, StorageUpload, StorageVolume
from apps.storage.sync import sync_pools
from kvmpanel.virt import storage as virt_storage
from kvmpanel.virt.errors import HypervisorError
from tests.conftest import ROOT, make_user

pytestmark = pytest.mark.lab

MIB = 1 << 20
GIB = 1 << 30
# Lab host 1 sees this machine's filesystem: a pool directory here is a directory on the host.
LAB_HOST_DIR = ROOT / "var" / "lab" / "host1"


@pytest.fixture
def pool_dir(lab_host):
    """A directory (not yet made) for a test pool, and the removal of every t-storage pool after."""
    path = LAB_HOST_DIR / f"t-storage-{uuid.uuid4().hex[:8]}"
    yield path
    _remove_test_pools(lab_host.uri)
    shutil.rmtree(path, ignore_errors=True)


def _remove_test_pools(uri: str) -> None:
    for pool in virt_storage.list_pools(uri):
        if not pool.name.startswith("t-storage"):
            continue
        for volume in pool.volumes:
            with contextlib.suppress(HypervisorError):
                virt_storage.delete_volume(uri, pool.name, volume.name)
        with contextlib.suppress(HypervisorError):
            virt_storage.delete_pool(uri, pool.name)


@pytest.fixture
def test_pool(lab_host, operator, pool_dir) -> StoragePool:
    sync_pools(lab_host)
    return services.create_pool(lab_host, actor=operator, name=pool_dir.name, path=str(pool_dir))


def qemu_img_info(path: Path) -> dict:
    result = subprocess.run(["qemu-img", "info", "--output=json", "-U", str(path)], capture_output=True, check=True)
    return json.loads(result.stdout)


def test_a_dir_pool_lives_its_whole_life_on_a_lab_host(lab, lab_host, operator, pool_dir):
    sync_pools(lab_host)
    assert not pool_dir.exists()
    pool = services.create_pool(lab_host, actor=operator, name=pool_dir.name, path=str(pool_dir))
    assert pool_dir.is_dir()  # pool-build made it
    info = lab.virsh(1, "pool-info", pool.name).stdout
    assert "running" in info and "Autostart:      yes" in info

    pool = services.stop_pool(pool, actor=operator)
    assert "inactive" in lab.virsh(1, "pool-info", pool.name).stdout and not pool.active
    pool = services.start_pool(pool, actor=operator)
    pool = services.set_pool_autostart(pool, False, actor=operator)
    assert "Autostart:      no" in lab.virsh(1, "pool-info", pool.name).stdout and pool.autostart is False

    # A file put there behind libvirt's back shows up after a refresh, as a volume.
    (pool_dir / "outside.img").write_bytes(b"\0" * 4096)
    assert not pool.volumes.exists()
    pool = services.refresh_pool(pool, actor=operator)
    assert list(pool.volumes.values_list("name", flat=True)) == ["outside.img"]

    with pytest.raises(ServiceError) as refused:
        services.delete_pool(pool, actor=operator)
    assert refused.value.status == 409 and "not empty" in refused.value.message
    assert pool_dir.is_dir() and "running" in lab.virsh(1, "pool-info", pool.name).stdout

    services.delete_volume(pool.volumes.get(), actor=operator)
    services.delete_pool(pool, actor=operator)
    assert not pool_dir.exists()
    assert lab.virsh(1, "pool-info", pool.name, check=False).returncode != 0
    assert not StoragePool.objects.filter(name=pool.name).exists()


def test_new_volumes_are_sparse_and_grow(lab, operator, test_pool):
    raw = services.create_volume(test_pool, actor=operator, name="t-data.raw", fmt="raw", capacity_bytes=GIB)
    qcow2 = services.create_volume(test_pool, actor=operator, name="t-data.qcow2", fmt="qcow2", capacity_bytes=GIB)
    for volume, fmt in ((raw, "raw"), (qcow2, "qcow2")):
        assert (volume.format, volume.capacity_bytes) == (fmt, GIB)
        assert volume.allocation_bytes < MIB, "a new volume must be sparse"
        assert volume.sparse
        image = qemu_img_info(Path(volume.path))
        assert (image["format"], image["virtual-size"]) == (fmt, GIB)
        assert os.stat(volume.path).st_blocks * 512 < MIB

    raw = services.resize_volume(raw, 2 * GIB, actor=operator)
    qcow2 = services.resize_volume(qcow2, 3 * GIB, actor=operator)
    assert (raw.capacity_bytes, qcow2.capacity_bytes) == (2 * GIB, 3 * GIB)
    assert qemu_img_info(Path(qcow2.path))["virtual-size"] == 3 * GIB
    assert raw.allocation_bytes < MIB and qcow2.allocation_bytes < MIB  # grown, still sparse
    with pytest.raises(ServiceError) as refused:
        services.resize_volume(qcow2, GIB, actor=operator)
    assert refused.value.code == "shrink"
    assert "2.00 GiB" in lab.virsh(1, "vol-info", "--pool", test_pool.name, "t-data.raw").stdout


@pytest.mark.parametrize(
    ("name", "size"),
    [
        ("t-a/b.raw", MIB),
        ("..", MIB),
        ("t-<x>.raw", MIB),
        ("t-a&b.raw", MIB),
        ("t" * 300, MIB),
        ("t-é.raw", MIB),
        ("t-zero.raw", 0),
        ("t-neg.raw", -MIB),
        ("t-absurd.raw", 10**30),
        ("t-huge.raw", "beyond"),
    ],
)
def test_bad_volumes_on_a_lab_host_create_nothing(lab_host, operator, test_pool, name, size):
    if size == "beyond":
        size = virt_storage.pool_info(lab_host.uri, test_pool.name).available_bytes + GIB
    with pytest.raises(ServiceError) as refused:
        services.create_volume(test_pool, actor=operator, name=name, fmt="raw", capacity_bytes=size)
    assert refused.value.status == 400 and refused.value.message
    assert list(Path(test_pool.path).iterdir()) == []
    assert not test_pool.volumes.exists()


def test_an_existing_file_is_never_overwritten(operator, test_pool):
    (Path(test_pool.path) / "t-taken.raw").write_bytes(b"keep me")
    with pytest.raises(ServiceError) as refused:
        services.create_volume(test_pool, actor=operator, name="t-taken.raw", fmt="raw", capacity_bytes=MIB)
    assert refused.value.status == 409
    with pytest.raises(ServiceError):
        services.new_volume_path(test_pool.host, test_pool.name, "t-taken.raw")
    assert (Path(test_pool.path) / "t-taken.raw").read_bytes() == b"keep me"


# ---- upload and download through the real panel ----


class PanelClient:
    """HTTP to the running panel with an API token; bodies stream from file objects."""

    def __init__(self, panel, token: str) -> None:
        self.port = panel.port
        self.token = token

    def request(self, method: str, path: str, body=None, headers: dict | None = None):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        all_headers = {"Authorization": f"Token {self.token}", **(headers or {})}
        connection.request(method, path, body=body, headers=all_headers)
        return connection, connection.getresponse()

    def json(self, method: str, path: str, payload: dict | None = None) -> tuple[int, dict]:
        body = json.dumps(payload).encode() if payload is not None else None
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        connection, response = self.request(method, path, body, headers)
        with contextlib.closing(connection):
            return response.status, json.loads(response.read() or b"{}")

    def upload(self, pool: StoragePool, name: str, data: bytes, part_bytes: int = 16 * MIB) -> tuple[int, dict]:
        """The browser's protocol: start, then one PUT per part; (status, the volume or the refusal)."""
        status, started = self.json(
            "POST", reverse("pool-upload-list", args=[pool.pk]), {"name": name, "size": len(data)}
        )
        if status != 201:
            return status, started
        path = reverse("pool-upload-detail", args=[pool.pk, started["id"]])
        for offset in range(0, len(data), part_bytes):
            part = data[offset : offset + part_bytes]
            headers = {"Content-Type": "application/octet-stream", "Content-Length": str(len(part))}
            connection, response = self.request("PUT", f"{path}?offset={offset}", io.BytesIO(part), headers)
            with contextlib.closing(connection):
                status, answer = response.status, json.loads(response.read() or b"{}")
            if status != 200:
                return status, answer
        return 201, answer["volume"]

    def download(self, volume_id: int, pool: StoragePool) -> tuple[int, bytes, dict]:
        connection, response = self.request("GET", reverse("pool-volume-download", args=[pool.pk, volume_id]))
        with contextlib.closing(connection):
            return response.status, response.read(), dict(response.getheaders())


def token_for(operator, user) -> str:
    return create_api_token(actor=operator, user=user)[1]


def image_with_holes() -> bytes:
    """12 MiB: random data, 8 MiB of zeros, a tail that ends mid-chunk."""
    return os.urandom(3 * MIB) + bytes(8 * MIB) + os.urandom(MIB + 12345)


def test_an_upload_through_the_panel_downloads_back_byte_identical(panel, operator, test_pool):
    client = PanelClient(panel, token_for(operator, operator))
    data = image_with_holes()
    started = time.monotonic()
    status, body = client.upload(test_pool, "t-up.img", data)
    upload_seconds = time.monotonic() - started
    assert status == 201, body
    assert (body["name"], body["format"], body["capacity_bytes"]) == ("t-up.img", "raw", len(data))
    assert body["allocation_bytes"] < len(data) - 6 * MIB, "the zeros must arrive as holes"
    assert Path(body["path"]).read_bytes() == data

    started = time.monotonic()
    status, downloaded, headers = client.download(body["id"], test_pool)
    download_seconds = time.monotonic() - started
    assert status == 200
    assert headers["Content-Length"] == str(len(data))
    assert 'filename="t-up.img"' in headers["Content-Disposition"]
    assert hashlib.sha256(downloaded).hexdigest() == hashlib.sha256(data).hexdigest()
    print(f"upload 12 MiB: {upload_seconds:.2f} s; download: {download_seconds:.2f} s")


def test_an_iso_and_a_qcow2_keep_their_formats(panel, operator, test_pool, tmp_path):
    client = PanelClient(panel, token_for(operator, operator))
    iso = (ROOT / "var" / "lab" / "images" / "labos-live.iso").read_bytes()
    status, body = client.upload(test_pool, "t-live.iso", iso)
    assert status == 201, body
    assert body["format"] == "iso"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(tmp_path / "d.qcow2"), "1G"], check=True)
    qcow2 = (tmp_path / "d.qcow2").read_bytes()
    status, body = client.upload(test_pool, "t-disk.qcow2", qcow2)
    assert status == 201, body
    assert (body["format"], body["capacity_bytes"]) == ("qcow2", GIB)
    status, downloaded, _headers = client.download(body["id"], test_pool)
    assert status == 200 and downloaded == qcow2


def test_a_qcow2_with_a_backing_file_is_refused(panel, operator, test_pool, tmp_path):
    base, overlay = tmp_path / "base.qcow2", tmp_path / "overlay.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(base), "64M"], check=True)
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(base), str(overlay)], check=True
    )
    client = PanelClient(panel, token_for(operator, operator))
    status, body = client.upload(test_pool, "t-evil.qcow2", overlay.read_bytes())
    assert status == 400 and "backing file" in body["detail"]
    assert list(Path(test_pool.path).iterdir()) == []


def test_uploads_with_bad_names_or_beyond_the_pools_space_are_refused(panel, operator, test_pool, lab_host, settings):
    client = PanelClient(panel, token_for(operator, operator))
    for name in ("t-a/b.iso", "..", "t-<x>.iso", "t" * 300, "t-é.iso"):
        status, body = client.upload(test_pool, name, b"x" * 1024)
        assert status == 400 and body["detail"], name
    # More than the pool has free is refused when the upload starts, before a byte is sent.
    free = virt_storage.pool_info(lab_host.uri, test_pool.name).available_bytes
    status, body = client.json(
        "POST", reverse("pool-upload-list", args=[test_pool.pk]), {"name": "t-big.iso", "size": free + 1}
    )
    assert status == 400 and "bytes" in body["detail"]  # beyond the pool (or the panel's upload limit)
    settings.KVMPANEL_STORAGE_UPLOAD_MAX_BYTES = 2 * free  # (in this process: the panel keeps its own)
    with pytest.raises(ServiceError) as refused:
        transfers.validate_upload(test_pool, name="t-big.iso", size=free + 1)
    assert "free" in refused.value.message
    assert list(Path(test_pool.path).iterdir()) == []


def test_an_upload_cut_off_mid_part_then_abandoned_leaves_nothing(panel, operator, test_pool):
    import socket

    client = PanelClient(panel, token_for(operator, operator))
    status, started = client.json(
        "POST", reverse("pool-upload-list", args=[test_pool.pk]), {"name": "t-cut.img", "size": 16 * MIB}
    )
    assert status == 201
    part = reverse("pool-upload-detail", args=[test_pool.pk, started["id"]]) + "?offset=0"
    with socket.create_connection(("127.0.0.1", panel.port)) as sock:
        head = (
            f"PUT {part} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Token {client.token}\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Length: {8 * MIB}\r\n\r\n"
        )
        sock.sendall(head.encode() + os.urandom(2 * MIB))  # then the connection drops
    time.sleep(0.5)
    upload = StorageUpload.objects.get(pk=started["id"])
    assert upload.received_bytes == 0  # the cut part never counted
    # The client resumes where the panel says, and finishes.
    data = os.urandom(16 * MIB)
    path = reverse("pool-upload-detail", args=[test_pool.pk, started["id"]])
    for offset in (0, 8 * MIB):
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(8 * MIB)}
        connection, response = client.request(
            "PUT", f"{path}?offset={offset}", data[offset : offset + 8 * MIB], headers
        )
        with contextlib.closing(connection):
            assert response.status == 200, response.read()
    assert (Path(test_pool.path) / "t-cut.img").read_bytes() == data
    # Another upload, left idle, is reaped with its volume.
    status, started = client.json(
        "POST", reverse("pool-upload-list", args=[test_pool.pk]), {"name": "t-idle.img", "size": MIB}
    )
    assert (Path(test_pool.path) / "t-idle.img").exists()
    StorageUpload.objects.filter(pk=started["id"]).update(updated_at=timezone.now() - timedelta(hours=2))
    assert transfers.reap_idle_uploads() == ["t-idle.img"]
    assert not (Path(test_pool.path) / "t-idle.img").exists()


def test_an_upload_aborted_through_the_api_leaves_nothing(panel, operator, test_pool):
    client = PanelClient(panel, token_for(operator, operator))
    status, started = client.json(
        "POST", reverse("pool-upload-list", args=[test_pool.pk]), {"name": "t-ab.img", "size": 16 * MIB}
    )
    path = reverse("pool-upload-detail", args=[test_pool.pk, started["id"]])
    headers = {"Content-Type": "application/octet-stream", "Content-Length": str(8 * MIB)}
    connection, response = client.request("PUT", f"{path}?offset=0", os.urandom(8 * MIB), headers)
    with contextlib.closing(connection):
        assert response.status == 200
    assert (Path(test_pool.path) / "t-ab.img").exists()
    status, _body = client.json("DELETE", path)
    assert status == 204
    assert list(Path(test_pool.path).iterdir()) == []
    assert not StorageUpload.objects.exists() and not StorageVolume.objects.filter(name="t-ab.img").exists()


def test_strangers_and_viewers_cannot_upload_or_download(panel, operator, lab_host, test_pool):
    viewer, _ = Role.objects.get_or_create(name="Viewer", defaults={"privileges": ["vm.view", "host.view"]})
    bob, carol = make_user("bob"), make_user("carol")
    grant_role(actor=operator, role=viewer, scope=lab_host.scope, user=carol)
    (Path(test_pool.path) / "t-secret.img").write_bytes(b"secret")
    services.refresh_pool(test_pool, actor=operator)
    secret = test_pool.volumes.get(name="t-secret.img")
    for user, status in ((bob, 404), (carol, 403)):
        client = PanelClient(panel, token_for(operator, user))
        upload_status, body = client.upload(test_pool, "t-intruder.img", b"x" * 4096)
        assert upload_status == status and body["detail"]
        download_status, downloaded, _headers = client.download(secret.pk, test_pool)
        assert download_status == status and b"secret" not in downloaded
    assert sorted(p.name for p in Path(test_pool.path).iterdir()) == ["t-secret.img"]
