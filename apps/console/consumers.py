"""The serial console over WebSocket: xterm.js in the browser, a libvirt console stream on the host.

`/ws/vms/<id>/serial/` is accepted (with the subprotocol "binary") only after, in order: the
session is logged in (the Origin was already checked by the ASGI stack), the ticket in
Sec-WebSocket-Protocol redeems once for a serial console from this very session, it names the VM of
the URL and the session's user, the user may still use the console of that VM, which is running,
and the console caps allow one more. A refusal closes the socket before the upgrade: not one byte of
console data.

Once accepted, the consumer opens the VM's serial console as a libvirt stream (one per WebSocket;
a console that another session holds is refused) and relays bytes both ways in binary frames. A
watchdog re-checks the grant every KVMPANEL_CONSOLE_RECHECK_SECONDS and closes the console when the
user is disabled, loses the privilege, or the VM is deleted; the socket closes when the stream ends
(the VM stopped). Opening and closing are audited; tickets never reach a log line.

Frames: console data in binary frames, both ways. The server's only text frame is the last one,
`{"type": "close", "code": ..., "reason": ...}`, right before it closes the socket with that code.
"""

import asyncio
import contextlib
import json
import logging
import time
import uuid

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from apps.console import services, store
from apps.console.choices import ConsoleKind
from apps.core.consumers import CLOSE_UNAUTHENTICATED
from kvmpanel.virt import serial
from kvmpanel.virt.errors import HypervisorError

log = logging.getLogger("kvmpanel.console")

SUBPROTOCOL = "binary"
CLOSE_NORMAL = 1000
CLOSE_TOO_BIG = 1009
CLOSE_REFUSED = 4403  # bad ticket, another VM or user, privilege revoked
CLOSE_IDLE = 4408
CLOSE_BUSY = 4409  # another session holds the VM's serial console
CLOSE_ENDED = 4410  # the console stream ended: the VM stopped
CLOSE_UNAVAILABLE = 4503  # the hypervisor could not open the console
FRAME_BYTES = 64 * 1024


def _close_reason(text: str) -> str:
    """A WebSocket close reason is at most 123 bytes of UTF-8."""
    encoded = text.encode()
    return text if len(encoded) <= 123 else encoded[:120].decode(errors="ignore") + "…"


class SerialConsoleConsumer(AsyncWebsocketConsumer):
    """`/ws/vms/<id>/serial/`: one VM's serial console (virsh console) for one browser session."""

    grant: services.ConsoleGrant | None = None
    console: serial.SerialConsole | None = None

    async def connect(self) -> None:
        self.tasks: list[asyncio.Task] = []
        self.close_reason = "closed by the client"
        self.bytes_in = self.bytes_out = 0
        self.opened = self.last_input = time.monotonic()
        self.connection_id = uuid.uuid4().hex
        self.client = (self.scope.get("client") or [None])[0]
        self.finished = False

        user = self.scope.get("user")
        session = self.scope.get("session")
        session_key = getattr(session, "session_key", None)
        if user is None or not user.is_authenticated or not session_key:
            await self.refuse(CLOSE_UNAUTHENTICATED, "not logged in")
            return
        protocols = self.scope.get("subprotocols") or []
        if SUBPROTOCOL not in protocols:
            await self.refuse(CLOSE_REFUSED, "no binary subprotocol")
            return
        vm_id = int(self.scope["url_route"]["kwargs"]["pk"])
        try:
            grant = await database_sync_to_async(services.redeem)(
                services.ticket_from_protocols(",".join(protocols)), kind=ConsoleKind.SERIAL, session_key=session_key
            )
            if grant.vm_id != vm_id:
                raise services.Refused("ticket for another VM")
            if grant.user_id != user.pk:
                raise services.Refused("ticket of another user")
            vm = await database_sync_to_async(services.serial_state)(grant)
            await sync_to_async(services.check_capacity, thread_sensitive=False)(grant)
        except services.Refused as refused:
            await self.refuse(CLOSE_REFUSED, str(refused))
            return

        self.grant = grant
        self.vm = vm
        await self.accept(SUBPROTOCOL)
        loop = asyncio.get_running_loop()
        self.incoming: asyncio.Queue[bytes | str] = asyncio.Queue()

        def on_data(data: bytes) -> None:  # the libvirt event-loop thread
            with contextlib.suppress(RuntimeError):  # the loop is gone: daphne is shutting down
                loop.call_soon_threadsafe(self.incoming.put_nowait, data)

        def on_close(reason: str) -> None:  # the libvirt event-loop thread
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self.incoming.put_nowait, reason)

        try:
            self.console = await sync_to_async(serial.open_serial, thread_sensitive=False)(
                vm.host.uri, vm.uuid, on_data=on_data, on_close=on_close
            )
        except HypervisorError as error:
            log.info("serial console of VM %s not opened: %s", vm.pk, error.code)
            await database_sync_to_async(services.record_refused)(grant, vm, self.client, error.message)
            code = CLOSE_BUSY if error.code == "console-busy" else CLOSE_UNAVAILABLE
            self.grant = None  # nothing was opened: nothing to count or audit as closed
            await self.say_goodbye(code, error.message)
            return

        self.opened = time.monotonic()
        lifetime = settings.KVMPANEL_CONSOLE_RECHECK_SECONDS * 5
        try:
            await sync_to_async(store.mark_open, thread_sensitive=False)(
                self.connection_id, grant.user_id, grant.vm_id, lifetime
            )
            await database_sync_to_async(services.record_opened)(grant, vm, self.client)
        except Exception:
            await self.release()  # never leave the VM's console held by a consumer that failed
            raise
        self.tasks = [asyncio.create_task(self.relay()), asyncio.create_task(self.watch())]

    async def refuse(self, code: int, reason: str) -> None:
        """Close before the upgrade (the client sees HTTP 403); the reason is logged, never sent."""
        log.info("serial console refused for %s: %s", self.client, reason)
        await self.close(code=code)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.console is None or self.finished:
            return
        console = self.console
        data = bytes_data if bytes_data is not None else (text_data or "").encode()
        if len(data) > settings.KVMPANEL_CONSOLE_MAX_MESSAGE_BYTES:
            await self.finish(CLOSE_TOO_BIG, "message too big")
            return
        self.last_input = time.monotonic()
        try:
            await sync_to_async(console.write, thread_sensitive=False)(data)
        except HypervisorError as error:
            await self.finish(CLOSE_ENDED, error.message)
            return
        self.bytes_in += len(data)

    async def relay(self) -> None:
        """Console output to the browser, in order, several chunks per frame when they pile up."""
        while True:
            item = await self.incoming.get()
            if isinstance(item, str):  # the stream ended
                await self.finish(CLOSE_ENDED, item)
                return
            chunks, size = [item], len(item)
            while size < FRAME_BYTES and not self.incoming.empty():
                following = self.incoming.get_nowait()
                if isinstance(following, str):
                    self.incoming.put_nowait(following)  # sent after this frame
                    break
                chunks.append(following)
                size += len(following)
            await self.send(bytes_data=b"".join(chunks))
            self.bytes_out += size

    async def watch(self) -> None:
        """Every few seconds: may this console stay open?"""
        interval = settings.KVMPANEL_CONSOLE_RECHECK_SECONDS
        lifetime = interval * 5
        grant = self.grant
        while True:
            await asyncio.sleep(interval)
            reason = await database_sync_to_async(services.still_allowed)(grant)
            if reason is not None:
                await self.finish(CLOSE_REFUSED, reason)
                return
            if time.monotonic() - self.last_input > settings.KVMPANEL_CONSOLE_IDLE_SECONDS:
                await self.finish(CLOSE_IDLE, "idle timeout")
                return
            await sync_to_async(store.mark_open, thread_sensitive=False)(
                self.connection_id, grant.user_id, grant.vm_id, lifetime
            )

    async def finish(self, code: int, reason: str) -> None:
        """Close the console stream now and the socket with `code`; disconnect() audits it."""
        if self.finished:
            return
        self.finished = True
        self.close_reason = reason
        log.info("closing serial console of VM %s: %s", self.grant.vm_id if self.grant else "?", reason)
        await self.release()
        await self.say_goodbye(code, reason)

    async def say_goodbye(self, code: int, reason: str) -> None:
        """Close with `code`, after a text frame that says why: daphne drops the reason of a close
        frame. Console data only ever travels in binary frames, so the two cannot be confused."""
        with contextlib.suppress(Exception):  # the client may be gone already
            await self.send(text_data=json.dumps({"type": "close", "code": code, "reason": reason}))
        await self.close(code=code, reason=_close_reason(reason))

    async def release(self) -> None:
        console, self.console = self.console, None
        if console is not None:
            await sync_to_async(console.close, thread_sensitive=False)()

    async def disconnect(self, code: int) -> None:
        current = asyncio.current_task()
        for task in getattr(self, "tasks", []):
            if task is not current:
                task.cancel()
        self.finished = True
        await self.release()
        grant, self.grant = self.grant, None
        if grant is None:
            return
        await sync_to_async(store.mark_closed, thread_sensitive=False)(self.connection_id, grant.user_id, grant.vm_id)
        await database_sync_to_async(services.record_closed)(
            grant,
            self.client,
            seconds=time.monotonic() - self.opened,
            reason=self.close_reason,
            bytes_in=self.bytes_in,
            bytes_out=self.bytes_out,
        )
