"""Live job progress over WebSocket: `/ws/jobs/<id>/` for a job the user can see."""

from channels.db import database_sync_to_async

from apps.core.consumers import LiveConsumer
from apps.jobs.live import job_group
from apps.jobs.services import visible_jobs


@database_sync_to_async
def _visible(user, job_id: int) -> bool:
    from apps.accounts.permissions import forget_access

    forget_access(user)  # re-read grants: a revoked user stops receiving at once
    return visible_jobs(user).filter(pk=job_id).exists()


class JobConsumer(LiveConsumer):
    async def authorize(self, user) -> bool:
        self.job_id = int(self.scope["url_route"]["kwargs"]["pk"])
        self.group = job_group(self.job_id)
        return await _visible(user, self.job_id)

    async def _relay(self, kind: str, event: dict) -> None:
        if await _visible(self.scope["user"], self.job_id):
            await self.send_json({"type": kind, "job_id": event["job_id"], "payload": event["payload"]})

    async def job_progress(self, event: dict) -> None:
        await self._relay("progress", event)

    async def job_log(self, event: dict) -> None:
        await self._relay("log", event)

    async def job_finished(self, event: dict) -> None:
        await self._relay("finished", event)
