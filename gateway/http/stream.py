"""``/api/v1/stream``: the dashboard's live updates as server-sent events.

Lifecycle: a client connects → gets one ``snapshot`` event (everything the page
shows) → then at most one ``diff`` event per ``interval`` (0.5 s) carrying only
what changed: readings touched since the last diff (latest value and the
current sparkline bucket), devices whose entry changed, and the alerts, rules,
commands and health sections when they differ from what was last sent. A busy
gateway therefore costs the browser two small messages a second, however many
readings arrive.

One broadcaster task builds each diff once for all clients, and runs only
while someone listens. Drop policy: each client has a queue of ``QUEUE_MAX``
diffs; a client that falls that far behind (a stalled phone) is disconnected
and counted, and its reconnection starts again from a snapshot — a diff is
never silently skipped. A comment line every ``KEEPALIVE`` seconds keeps
proxies from closing an idle stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from aiohttp import web

from gateway.status import views
from gateway.status.model import StatusModel

log = logging.getLogger("outpost.http")

QUEUE_MAX = 8
KEEPALIVE = 15.0


def _event(name: str, data: Any) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


class Stream:
    def __init__(self, model: StatusModel, interval: float = 0.5) -> None:
        self._model = model
        self._live = live = model.live
        self.interval = interval
        self._clients: set[asyncio.Queue[bytes | None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._sent: dict[str, str] = {}  # section -> JSON last broadcast
        self._devices_sent: dict[str, str] = {}
        self._journal_head = -1
        self._commands: list[dict[str, Any]] = []
        self._epoch = live.epoch
        self.dropped_clients = 0
        self.diffs = 0

    @property
    def clients(self) -> int:
        return len(self._clients)

    # what a client sees --------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        model, live = self._model, self._live
        return {
            "devices": views.devices(model, live),
            "readings": views.readings(live, spark=True),
            "alerts": views.alerts(model),
            "rules": views.rules(model),
            "commands": self._recent_commands(),
            "health": views.health(model, live, self.clients),
            "bucket_s": live.bucket_ns / 1e9,
            "points": live.points,
        }

    def _recent_commands(self) -> list[dict[str, Any]]:
        head = self._model.journal.head()
        if head != self._journal_head:  # only re-read the journal when it grew
            self._journal_head = head
            self._commands = views.commands_recent(self._model)
        return self._commands

    def diff(self) -> dict[str, Any]:
        """What changed since the previous call (shared by every client)."""
        model, live = self._model, self._live
        since = self._epoch
        self._epoch = live.mark() + 1
        out: dict[str, Any] = {}
        changed = live.changed_since(since)
        if changed:
            rows = []
            for s in changed:
                row = views.reading(live, s)
                row["point"] = live.last_point(s)
                rows.append(row)
            out["readings"] = rows
        devices = []
        for d in views.devices(model, live):
            text = json.dumps(d, sort_keys=True)
            if self._devices_sent.get(d["device"]) != text:
                self._devices_sent[d["device"]] = text
                devices.append(d)
        if devices:
            out["devices"] = devices
        sections = {
            "alerts": views.alerts(model),
            "rules": views.rules(model),
            "commands": self._recent_commands(),
            "health": views.health(model, live, self.clients),
        }
        for name, value in sections.items():
            text = json.dumps(value, sort_keys=True)
            if self._sent.get(name) != text:
                self._sent[name] = text
                out[name] = value
        return out

    # broadcasting ------------------------------------------------------------------

    async def _broadcast(self) -> None:
        while self._clients:
            await asyncio.sleep(self.interval)
            try:
                diff = self.diff()
            except Exception:
                log.exception("dashboard diff failed")
                continue
            if not diff:
                continue
            self.diffs += 1
            message = _event("diff", diff)
            for queue in list(self._clients):
                if queue.full():
                    self._clients.discard(queue)
                    self.dropped_clients += 1
                    with contextlib.suppress(asyncio.QueueEmpty):
                        queue.get_nowait()
                    queue.put_nowait(None)  # the handler ends; the browser reconnects
                else:
                    queue.put_nowait(message)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )  # nginx: do not buffer the stream
        await response.prepare(request)
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(QUEUE_MAX)
        if not self._clients:  # the first listener: forget what earlier ones were sent
            self._sent.clear()
            self._devices_sent.clear()
            self._epoch = self._live.mark() + 1
        self._clients.add(queue)
        try:
            await response.write(_event("snapshot", self.snapshot()))
            if self._task is None or self._task.done():
                self._task = asyncio.create_task(self._broadcast(), name="dashboard-stream")
            while True:
                try:
                    message = await asyncio.wait_for(queue.get(), KEEPALIVE)
                except TimeoutError:
                    message = b": keepalive\n\n"
                if message is None:
                    break
                await response.write(message)
        except ConnectionResetError:
            pass  # the browser went away
        finally:
            self._clients.discard(queue)
        return response

    async def close(self) -> None:
        """End every stream (before the server stops, so shutdown does not wait on them)."""
        for queue in list(self._clients):
            with contextlib.suppress(asyncio.QueueEmpty):
                queue.get_nowait()
            queue.put_nowait(None)
        self._clients.clear()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
