"""Jobs: what the job system costs on top of the work itself, on lab host 1 with a real Celery worker.

* clone_vs_qemu_img_ratio: a `vm.clone` job of a shut-off VM whose disk is a 1 GiB qcow2 image holding
  512 MiB of data (enqueue → succeeded: checks, disk copy with progress, define, inventory row) against
  a plain `qemu-img convert` of the same image in the same run. Target ≤ 1.15.
* convert_vs_qemu_img_ratio: a `vm.disk.convert` job turning that VM's disk into raw (checks, copy,
  repoint the VM; the old volume is kept, as `qemu-img convert` keeps it, and deleted after the timing)
  against a plain `qemu-img convert -O raw` of the same image. Target ≤ 1.15.
* job_start_ms_p50: POST /api/v1/jobs/ (a small volume.create) → the job row says running, over RUNS
  jobs. Target ≤ 300 ms.

How it is timed, so that the two sides get the same conditions:
* A job's time runs from the call to `enqueue_job` (validation included) to the moment this process
  receives the job's `job.finished` push over the channel layer, the same message an open job page
  gets, sent after the row says succeeded (no status polling, so no polling interval in the figure).
* The baseline is the command libvirtd itself runs for the copy (seen with `ps` during a job, libvirt
  9.0: `qemu-img convert -f qcow2 -O qcow2 -o compat=0.10 SRC DST` for the clone, `-f qcow2 -O raw`
  for the convert), writing into the same pool directory; its time includes nothing else.
* Before every timed step the page cache's dirty pages are written out (`sync`, not timed), so no step
  pays for writeback left by the one before; nothing is dropped from the cache, and the source image
  is read from the page cache by both sides. Each side's copy is deleted right after its step, before
  that sync: deleting a 512 MiB file already on disk has ext4 free and discard its blocks (about half
  a second here, with the `discard` mount option), which would slow whichever step came next. What
  must be deleted from disk (a convert's source) goes at the end of a round, and the next round
  starts once the disk has no request in flight.
* The first large write into the pool's file system after the source image was written (qemu-io
  writes through, with a flush per request) takes 1-2 s more than the next ones, whoever makes it:
  measured with `dd` and `qemu-img` alone. So each round begins with one untimed baseline copy.
* The order alternates each round (baseline first, then job first), and each figure is the median of
  RUNS rounds after WARMUP rounds.

Output is one `name: value` line per figure on stdout; on stderr each round's times and where the
job's time went (`phases`: the request, the wait for the worker, the worker with the copy command's
window, the push of the verdict). Uses its own database (var/bench/jobs.sqlite3), Celery queue and
channel prefix, and lab host 1 (`scripts/lab/lab.sh up`, Redis running: `make bench` does both).
Never judges the timings.

Run from the repository root: `.venv/bin/python bench/jobs.py` (or `make bench`).
"""

import asyncio
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "var" / "bench"
DB_PATH = BENCH_DIR / "jobs.sqlite3"
POOL = "default"
IMAGE_BYTES = 1 << 30
DATA_BYTES = 512 << 20
WARMUP = 1
RUNS = 7
START_RUNS = 15
JOB_TIMEOUT = 300
SETTLE_SECONDS = 3
# What libvirtd 9.0 runs for storageVolCreateXMLFrom (read from `ps` while a job copies): the source
# format is given, and a qcow2 target without <compat> in the volume XML is made with compat=0.10.
LIBVIRT_CONVERT_OPTIONS = {
    "qcow2": ["-f", "qcow2", "-O", "qcow2", "-o", "compat=0.10"],
    "raw": ["-f", "qcow2", "-O", "raw"],
}


class BenchError(Exception):
    """Something went wrong: the figures would be meaningless."""


def progress(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def configure_django() -> None:
    sys.path.insert(0, str(ROOT))
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{DB_PATH}{suffix}").unlink(missing_ok=True)
    # tests.settings derives the database, Celery queue and channel prefix from this variable; the
    # worker started below inherits it, so it serves this run's queue only.
    os.environ["KVMPANEL_TEST_DB"] = str(DB_PATH)
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    import django
    from django.conf import settings

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    settings.LOGGING["root"]["level"] = "WARNING"
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def start_worker() -> subprocess.Popen:
    from django.conf import settings

    log = open(BENCH_DIR / "jobs-worker.log", "w")  # noqa: SIM115 - lives as long as the worker
    argv = [sys.executable, "-m", "celery", "-A", "kvmpanel", "worker", "--concurrency=1", "--loglevel=WARNING"]
    argv += ["-Q", settings.CELERY_TASK_DEFAULT_QUEUE, "-n", f"bench-{os.getpid()}@%h"]
    worker = subprocess.Popen(argv, cwd=ROOT, env=os.environ.copy(), stdout=log, stderr=subprocess.STDOUT)
    from kvmpanel.celery import app

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise BenchError("the Celery worker exited; see var/bench/jobs-worker.log")
        if app.control.ping(destination=[f"bench-{os.getpid()}@{os.uname().nodename}"], timeout=0.5):
            return worker
    raise BenchError("the Celery worker did not answer within 60 s")


class FinishWatch:
    """Listens on the channel layer's jobs group, as an open page does, for `job.finished` pushes."""

    def __init__(self) -> None:
        from channels.layers import get_channel_layer

        from apps.jobs.live import JOBS_GROUP

        self.layer = get_channel_layer()
        self.loop = asyncio.new_event_loop()
        self.channel = self.loop.run_until_complete(self.layer.new_channel())
        self.loop.run_until_complete(self.layer.group_add(JOBS_GROUP, self.channel))
        self.phases = ""

    async def _finished(self, job_id: int) -> None:
        while True:
            message = await self.layer.receive(self.channel)
            if message.get("type") == "job.finished" and message.get("job_id") == job_id:
                return

    def run(self, start: Callable[[], int]) -> tuple[float, object]:
        """Seconds from calling `start` (which enqueues and returns the job id) to its finish push;
        and the job, which must have succeeded. `self.phases` then says where the time went."""
        from apps.jobs.choices import JobStatus
        from apps.jobs.models import Job

        started, wall_started = time.monotonic(), time.time()
        job_id = start()
        wall_enqueued = time.time()
        try:
            self.loop.run_until_complete(asyncio.wait_for(self._finished(job_id), JOB_TIMEOUT))
        except TimeoutError as error:
            raise BenchError(f"job #{job_id} did not finish within {JOB_TIMEOUT} s") from error
        elapsed, wall_seen = time.monotonic() - started, time.time()
        job = Job.objects.get(pk=job_id)
        if job.status != JobStatus.SUCCEEDED:
            lines = "\n".join(job.log_lines.values_list("line", flat=True))
            raise BenchError(f"job {job.kind} #{job.pk} {job.status}: {job.error}\n{lines}")
        self.phases = phases(job, wall_started, wall_enqueued, wall_seen)
        return elapsed, job


def phases(job, wall_started: float, wall_enqueued: float, wall_seen: float) -> str:
    """Where a job's time went, from the row's and its log lines' time stamps (the same clock): the
    request (validation, row, audit), the wait for the worker (commit, Celery, claim), the worker
    (its command line logged → the next log line is the copy and what follows it at once), and the
    push of the verdict to this listener."""
    started, finished = job.started_at.timestamp(), job.finished_at.timestamp()
    lines = list(job.log_lines.order_by("pk").values_list("at", "line"))
    command = next((i for i, (_at, line) in enumerate(lines) if line.startswith("$ ")), None)
    copy = ""
    if command is not None and command + 1 < len(lines):
        before = (lines[command][0].timestamp() - started) * 1000
        during = (lines[command + 1][0].timestamp() - lines[command][0].timestamp()) * 1000
        copy = f" (before the command {before:.0f}, command → next log line {during:.0f})"
    request, queue = (wall_enqueued - wall_started) * 1000, (started - wall_enqueued) * 1000
    return (
        f"request {request:.0f} ms, to the worker {queue:.0f}, worker {(finished - started) * 1000:.0f}{copy}, "
        f"push {(wall_seen - finished) * 1000:.0f}"
    )


def settle(directory: Path) -> None:
    """Write out dirty pages and wait (a few seconds at most) until the pool's disk has no request in
    flight, such as the discards of a deleted image's blocks, which go on after the unlink returned."""
    os.sync()
    device = os.stat(directory).st_dev
    inflight = Path(f"/sys/dev/block/{os.major(device)}:{os.minor(device)}/inflight")
    deadline = time.monotonic() + SETTLE_SECONDS
    quiet_reads = 0
    while inflight.exists() and quiet_reads < 5 and time.monotonic() < deadline:
        quiet_reads = quiet_reads + 1 if inflight.read_text().split() == ["0", "0"] else 0
        time.sleep(0.02)


def qemu_img_seconds(source: str, fmt: str, directory: Path) -> float:
    target = directory / f"t-bench-baseline-{uuid.uuid4().hex[:6]}.{fmt}"
    os.sync()
    started = time.monotonic()
    subprocess.run(["qemu-img", "convert", *LIBVIRT_CONVERT_OPTIONS[fmt], source, str(target)], check=True)
    elapsed = time.monotonic() - started
    target.unlink()
    return elapsed


def make_source_vm(host, admin):
    """A shut-off VM whose only disk is a 1 GiB qcow2 with 512 MiB of data (written with qemu-io)."""
    from apps.vms import services as vm_services
    from kvmpanel.virt import storage
    from kvmpanel.virt import xml as domain_xml

    name = f"t-bench-{uuid.uuid4().hex[:6]}"
    disk = storage.create_volume(host.uri, POOL, f"{name}.qcow2", capacity_bytes=IMAGE_BYTES, fmt="qcow2")
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", f"write -P 0x5a 0 {DATA_BYTES}", disk], check=True, stdout=-3)
    spec = vm_services.tiny_guest_spec(name, disk_path=disk, iso_path="")
    return vm_services.define_vm(host, domain_xml.build_domain_xml(spec), actor=admin), disk


def remove_vm(vm, admin) -> None:
    from apps.vms import services as vm_services

    vm_services.delete_vm(vm, actor=admin, remove_disks=True)


def run_clone(watch: FinishWatch, admin, source) -> float:
    """Seconds of one `vm.clone` job; the clone is deleted right after (untimed)."""
    from apps.jobs import services as job_services
    from apps.vms.models import VirtualMachine

    os.sync()
    seconds, job = watch.run(lambda: job_services.enqueue_job("vm.clone", actor=admin, vm=source).pk)
    remove_vm(VirtualMachine.objects.get(pk=job.result["vm"]), admin)
    return seconds


def run_convert(watch: FinishWatch, admin, source) -> float:
    """Seconds of one `vm.disk.convert` job to raw that keeps the old volume; the VM and its new raw
    disk are deleted right after (untimed), the old volume at the end of the round."""
    from apps.jobs import services as job_services

    params = {"target": "vda", "format": "raw", "delete_source": False}
    os.sync()
    seconds, _job = watch.run(
        lambda: job_services.enqueue_job("vm.disk.convert", actor=admin, vm=source, params=params).pk
    )
    source.refresh_from_db()
    remove_vm(source, admin)
    return seconds


def measure_clone(host, admin, directory: Path, watch: FinishWatch) -> tuple[float, float]:
    job_times, baseline_times = [], []
    source, disk = make_source_vm(host, admin)
    try:
        for run in range(-WARMUP, RUNS):  # the warm-up runs (negative) are not counted
            qemu_img_seconds(disk, "qcow2", directory)  # untimed: the round's first large write
            settle(directory)
            # The baseline first in even rounds, the job first in odd ones.
            baseline = qemu_img_seconds(disk, "qcow2", directory) if run % 2 == 0 else None
            elapsed = run_clone(watch, admin, source)
            baseline = baseline if baseline is not None else qemu_img_seconds(disk, "qcow2", directory)
            progress(f"clone run {run + 1}: job {elapsed:.3f} s, qemu-img {baseline:.3f} s; job: {watch.phases}")
            if run >= 0:
                job_times.append(elapsed)
                baseline_times.append(baseline)
    finally:
        remove_vm(source, admin)
    return statistics.median(job_times), statistics.median(baseline_times)


def measure_convert(host, admin, directory: Path, watch: FinishWatch) -> tuple[float, float]:
    from kvmpanel.virt import storage

    job_times, baseline_times = [], []
    for run in range(-WARMUP, RUNS):
        source, disk = make_source_vm(host, admin)
        converted = False
        try:
            qemu_img_seconds(disk, "raw", directory)  # untimed: the round's first large write
            settle(directory)
            baseline = qemu_img_seconds(disk, "raw", directory) if run % 2 == 0 else None
            elapsed = run_convert(watch, admin, source)
            converted = True
            baseline = baseline if baseline is not None else qemu_img_seconds(disk, "raw", directory)
            progress(f"convert run {run + 1}: job {elapsed:.3f} s, qemu-img {baseline:.3f} s; job: {watch.phases}")
            if run >= 0:
                job_times.append(elapsed)
                baseline_times.append(baseline)
        finally:
            if not converted:
                remove_vm(source, admin)
            if storage.volume_info(host.uri, POOL, Path(disk).name) is not None:
                storage.delete_volume(host.uri, POOL, Path(disk).name)
    return statistics.median(job_times), statistics.median(baseline_times)


def post_job(client, host, params: dict) -> int:
    response = client.post(
        "/api/v1/jobs/",
        {"kind": "volume.create", "host": host.pk, "params": params},
        content_type="application/json",
    )
    if response.status_code != 202:
        raise BenchError(f"POST /api/v1/jobs/ answered {response.status_code}: {response.content[:300]!r}")
    return response.json()["job"]["id"]


def measure_job_start(host, admin, watch: FinishWatch) -> float:
    """POST /api/v1/jobs/ → running, from the request's start to the row's started_at."""
    from datetime import datetime
    from functools import partial

    from django.test import Client

    from kvmpanel.virt import storage

    client = Client()
    client.force_login(admin)
    delays = []
    for run in range(START_RUNS):
        name = f"t-bench-start-{uuid.uuid4().hex[:6]}.qcow2"
        params = {"pool": POOL, "name": name, "format": "qcow2", "capacity_bytes": 1 << 20}
        posted_at = datetime.now(UTC)
        _seconds, job = watch.run(partial(post_job, client, host, params))
        delays.append((job.started_at - posted_at).total_seconds() * 1000)
        storage.delete_volume(host.uri, POOL, name)
        progress(f"job start run {run + 1}: {delays[-1]:.0f} ms")
    return statistics.median(delays)


def main() -> int:
    configure_django()
    from apps.accounts.models import User
    from apps.hosts import services as host_services
    from apps.hosts.lab import lab_path_map, lab_uri

    admin = User.objects.create_superuser("bench-admin", password=uuid.uuid4().hex)
    host = host_services.add_host(actor=admin, name="lab1", uri=lab_uri(1), path_map=lab_path_map(1))
    directory = ROOT / "var" / "lab" / "host1" / "images"  # the pool's directory, for the baseline copies
    worker = start_worker()
    watch = FinishWatch()
    try:
        start_ms = measure_job_start(host, admin, watch)
        clone_job, clone_baseline = measure_clone(host, admin, directory, watch)
        convert_job, convert_baseline = measure_convert(host, admin, directory, watch)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    print(f"clone_job_seconds: {clone_job:.3f}")
    print(f"clone_qemu_img_seconds: {clone_baseline:.3f}")
    print(f"clone_overhead_ms: {(clone_job - clone_baseline) * 1000:.0f}")
    print(f"clone_vs_qemu_img_ratio: {clone_job / clone_baseline:.2f}")
    print(f"convert_job_seconds: {convert_job:.3f}")
    print(f"convert_qemu_img_seconds: {convert_baseline:.3f}")
    print(f"convert_overhead_ms: {(convert_job - convert_baseline) * 1000:.0f}")
    print(f"convert_vs_qemu_img_ratio: {convert_job / convert_baseline:.2f}")
    print(f"job_start_ms_p50: {start_ms:.0f}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as error:
        print(f"bench: FAILED: {error}", file=sys.stderr)
        sys.exit(1)
