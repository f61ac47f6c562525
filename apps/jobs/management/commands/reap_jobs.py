from django.core.management.base import BaseCommand

from apps.jobs.runner import reap_dead_jobs
from apps.jobs.services import reap_stale_jobs


class Command(BaseCommand):
    help = "Fail running jobs whose worker stopped sending heartbeats."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--stale-seconds", type=float, default=None)

    def handle(self, *args, stale_seconds: float | None = None, **options) -> None:
        reaped = reap_stale_jobs(stale_seconds=stale_seconds) if stale_seconds is not None else reap_dead_jobs()
        self.stdout.write(f"reaped {len(reaped)} job(s): {', '.join(map(str, reaped)) or '-'}")
