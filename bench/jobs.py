"""Jobs: what the job system costs on top of the work itself, on lab host 1 with a real Celery worker.

* clone_vs_qemu_img_ratio: a `vm.clone` job of a shut-off VM whose disk is a 1 GiB qcow2 image holding
  512 MiB of data (enqueue → succeeded: disk copy with progress, define, inventory row) against a plain
  `qemu-img convert -O qcow2` of the same image in the same run. Target ≤ 1.15.
* convert_vs_qemu_img_ratio: a `vm.disk.convert` job turning that VM's disk into raw (copy, repoint the
  VM) against a plain `qemu-img convert -O raw` of the same image. Target ≤ 1.15.
* job_start_ms_p50: POST /api/v1/jobs/ (a small volume.create) → the job row says running, over RUNS
  jobs. Target ≤ 300 ms.

Each duration is the median of RUNS runs; the baseline runs interleave with the job runs so page-cache
and disk state are the same for both. Output is one `name: value` line per figure on stdout (progress
on stderr). Uses its own database (var/bench/jobs.sqlite3), Celery queue and channel prefix, and lab
host 1 (`scripts/lab/lab.sh up`, Redis running: `make bench` does both). Never judges the timings.

Run from the repository root: `.venv/bin/python bench/jobs.py` (or `make bench`).
"""

import os
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "var" / "bench"
DB_PATH = BENCH_DIR / "jobs.sqlite3"
POOL = "default"
IMAGE_BYTES = 1 << 30
DATA_BYTES = 512 << 20
WARMUP = 1
RUNS = 5
START_RUNS = 15
JOB_TIMEOUT = 300


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


def wait_for_job(job_id: int) -> "object":
    from apps.jobs.choices import TERMINAL, JobStatus
    from apps.jobs.models import Job

    deadline = time.monotonic() + JOB_TIMEOUT
    while time.monotonic() < deadline:
        job = Job.objects.get(pk=job_id)
        if job.status in TERMINAL:
            if job.status != JobStatus.SUCCEEDED:
                lines = "\n".join(job.log_lines.values_list("line", flat=True))
                raise BenchError(f"job {job.kind} #{job.pk} {job.status}: {job.error}\n{lines}")
            return job
        time.sleep(0.02)
    raise BenchError(f"job #{job_id} did not finish within {JOB_TIMEOUT} s")


def qemu_img_seconds(source: str, fmt: str, directory: Path) -> float:
    target = directory / f"t-bench-baseline-{uuid.uuid4().hex[:6]}.{fmt}"
    started = time.monotonic()
    subprocess.run(["qemu-img", "convert", "-O", fmt, source, str(target)], check=True)
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


def measure_clone(host, admin, directory: Path) -> tuple[float, float]:
    from apps.jobs import services as job_services

    job_times, baseline_times = [], []
    source, disk = make_source_vm(host, admin)
    try:
        for run in range(-WARMUP, RUNS):  # the warm-up runs (negative) are not counted
            baseline = qemu_img_seconds(disk, "qcow2", directory)
            started = time.monotonic()
            job = job_services.enqueue_job("vm.clone", actor=admin, vm=source, params={})
            job = wait_for_job(job.pk)
            elapsed = time.monotonic() - started
            progress(f"clone run {run + 1}: job {elapsed:.2f} s, qemu-img {baseline:.2f} s")
            if run >= 0:
                job_times.append(elapsed)
                baseline_times.append(baseline)
            from apps.vms.models import VirtualMachine

            remove_vm(VirtualMachine.objects.get(pk=job.result["vm"]), admin)
    finally:
        remove_vm(source, admin)
    return statistics.median(job_times), statistics.median(baseline_times)


def measure_convert(host, admin, directory: Path) -> tuple[float, float]:
    from apps.jobs import services as job_services

    job_times, baseline_times = [], []
    for run in range(-WARMUP, RUNS):
        source, disk = make_source_vm(host, admin)
        try:
            baseline = qemu_img_seconds(disk, "raw", directory)
            started = time.monotonic()
            job = job_services.enqueue_job(
                "vm.disk.convert",
                actor=admin,
                vm=source,
                params={"target": "vda", "format": "raw", "delete_source": True},
            )
            wait_for_job(job.pk)
            elapsed = time.monotonic() - started
            progress(f"convert run {run + 1}: job {elapsed:.2f} s, qemu-img {baseline:.2f} s")
            if run >= 0:
                job_times.append(elapsed)
                baseline_times.append(baseline)
        finally:
            source.refresh_from_db()
            remove_vm(source, admin)
    return statistics.median(job_times), statistics.median(baseline_times)


def measure_job_start(host, admin) -> float:
    """POST /api/v1/jobs/ → running, from the request's start to the row's started_at."""
    from datetime import datetime

    from django.test import Client

    from kvmpanel.virt import storage

    client = Client()
    client.force_login(admin)
    delays = []
    for run in range(START_RUNS):
        name = f"t-bench-start-{uuid.uuid4().hex[:6]}.qcow2"
        params = {"pool": POOL, "name": name, "format": "qcow2", "capacity_bytes": 1 << 20}
        posted_at = datetime.now(UTC)
        response = client.post(
            "/api/v1/jobs/",
            {"kind": "volume.create", "host": host.pk, "params": params},
            content_type="application/json",
        )
        if response.status_code != 202:
            raise BenchError(f"POST /api/v1/jobs/ answered {response.status_code}: {response.content[:300]!r}")
        job = wait_for_job(response.json()["job"]["id"])
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
    try:
        start_ms = measure_job_start(host, admin)
        clone_job, clone_baseline = measure_clone(host, admin, directory)
        convert_job, convert_baseline = measure_convert(host, admin, directory)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    print(f"clone_job_seconds: {clone_job:.3f}")
    print(f"clone_qemu_img_seconds: {clone_baseline:.3f}")
    print(f"clone_vs_qemu_img_ratio: {clone_job / clone_baseline:.2f}")
    print(f"convert_job_seconds: {convert_job:.3f}")
    print(f"convert_qemu_img_seconds: {convert_baseline:.3f}")
    print(f"convert_vs_qemu_img_ratio: {convert_job / convert_baseline:.2f}")
    print(f"job_start_ms_p50: {start_ms:.0f}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as error:
        print(f"bench: FAILED: {error}", file=sys.stderr)
        sys.exit(1)
