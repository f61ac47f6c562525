"""Live job progress over WebSocket.

`/ws/jobs/<id>/`: one job the user can see (progress, log lines, the end).
`/ws/jobs/`: progress and the end of every job the user can see (the task panel, the jobs list).
"""

import time

from channels.db import database_sync_to_async

from apps.accounts.permissions import forget_access
from apps.core.consumers import LiveConsumer
from apps.jobs.live import JOBS_GROUP, job_group
from apps.jobs.services import visible_jobs

# The list stream remembers whether each job is visible for this long; then it reads the user's
# grants again. Progress messages come several times a second while a copy runs; this keeps them at
# one query per job per interval per open page, and a revoked grant stops the stream within it.
RECHECK_SECONDS = 5.0
# Decisions remembered per connection (a long-open page sees many jobs come and go).
MAX_DECISIONS = 512


@database_sync_to_async
def _visible(user, job_id: int) -> bool:
    forget_access(user)  # re-read grants: a revoked user stops receiving at once
    return visible_jobs(user).filter(pk=job_id).exists()


@database_sync_to_async
def _visibility(user, job_id: int, *, fresh: bool) -> tuple[bool, bool]:
    """(visible, requested by this user), in one query."""
    if fresh:
        forget_access(user)
    requesters = list(visible_jobs(user).filter(pk=job_id).values_list("requested_by_id", flat=True)[:1])
    return bool(requesters), bool(requesters) and requesters[0] == user.pk


class JobConsumer(LiveConsumer):
    async def authorize(self, user) -> bool:
        self.job_id = int(self.scope["url_route"]["kwargs"]["pk"])
        self.group = job_group(self.job_id)
        return await _visible(user, self.job_id)

    async def _relay(self, kind: str, event: dict) -> None:
        if await _visible(self.scope["user"], self.job_id):
            await self.send_json({"type": kind, "job_id": event["job_id"], "payload": event["payload"]})
        else:
            await self.lose_access()

    async def job_progress(self, event: dict) -> None:
        await self._relay("progress", event)

    async def job_log(self, event: dict) -> None:
        await self._relay("log", event)

    async def job_finished(self, event: dict) -> None:
        await self._relay("finished", event)


class JobListConsumer(LiveConsumer):
    """`/ws/jobs/`: each message says whether the job is the user's own (`mine`), so the task panel
    can add a job the user started in another tab. Log lines are not relayed here."""

    group = JOBS_GROUP

    async def authorize(self, user) -> bool:
        self._decisions: dict[int, tuple[bool, bool]] = {}
        self._decided_since = time.monotonic()
        return True

    async def _decide(self, job_id: int) -> tuple[bool, bool]:
        fresh = time.monotonic() - self._decided_since >= RECHECK_SECONDS
        if fresh:
            self._decisions.clear()
            self._decided_since = time.monotonic()
        decision = self._decisions.get(job_id)
        if decision is None:
            decision = await _visibility(self.scope["user"], job_id, fresh=fresh)
            if len(self._decisions) >= MAX_DECISIONS:
                self._decisions.pop(next(iter(self._decisions)))
            self._decisions[job_id] = decision
        return decision

    async def _relay(self, kind: str, event: dict) -> None:
        visible, mine = await self._decide(event["job_id"])
        if visible:
            await self.send_json({"type": kind, "job_id": event["job_id"], "payload": event["payload"], "mine": mine})

    async def job_progress(self, event: dict) -> None:
        await self._relay("progress", event)

    async def job_log(self, event: dict) -> None:
        """Log lines go to the job's own stream only (the job page)."""

    async def job_finished(self, event: dict) -> None:
        await self._relay("finished", event)
