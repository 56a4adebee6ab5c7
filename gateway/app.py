"""The running gateway: the lifecycle of the components :mod:`gateway.wiring` builds.

Start in order, stop in reverse, on every path (a clean stop, a signal, a
component that died, a failure while starting), with one
:class:`contextlib.AsyncExitStack`. The order is what makes "nothing
acknowledged is lost" hold at shutdown: stop taking new messages
(unacknowledged QoS 1 ones are redelivered next session), process what is
queued, stop the HTTP side and the background tasks, checkpoint the rules,
flush every batch to InfluxDB (acknowledging as they land), and only then
disconnect the source, the link, and close the outbox and the journal.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import resource
import sys
from collections.abc import Coroutine
from typing import Any

from gateway import preflight, wiring
from gateway.config import LoadedConfig
from gateway.journal import Journal
from gateway.metrics import Metrics
from gateway.statedir import StateDir
from rules import SourceError

log = logging.getLogger("outpost")


class Gateway:
    def __init__(self, loaded: LoadedConfig) -> None:
        """Check everything ``outpost config check`` checks, and that no other process
        holds the state directory or the HTTP port; a SourceError lists every problem
        before anything connects."""
        checked = preflight.check(loaded)
        if checked.in_use:
            raise SourceError(checked.in_use)
        self.loaded = loaded
        self.metrics = Metrics()
        self.ready = asyncio.Event()
        self._parts: wiring.Components | None = None

    async def run(self, stop: asyncio.Event) -> None:
        cfg = self.loaded.config
        loop = asyncio.get_running_loop()
        raise_open_files_limit()
        async with contextlib.AsyncExitStack() as stack:
            # Before any file is opened or any connection made: a second gateway on the
            # same state_dir stops here instead of taking over this one's broker sessions.
            state = StateDir.claim(cfg.state_dir)
            stack.callback(state.release)
            journal = Journal(cfg.state_dir, retention=cfg.journal.retention)
            stack.callback(journal.close)
            parts = self._parts = wiring.build(self.loaded, journal, self.metrics, loop)
            if parts.outbox is not None:
                stack.push_async_callback(_in_thread, parts.outbox.close)
            log.info("writing to %s", parts.sink.describe())

            parts.link.start()
            stack.push_async_callback(_in_thread, parts.link.stop)
            # The source's connection outlives the writer: the acknowledgements of the
            # last batches still have to reach the broker.
            stack.push_async_callback(_in_thread, parts.source.stop)

            writer_task = asyncio.create_task(parts.writer.run(), name="influx-writer")
            stack.push_async_callback(_stop_writer, parts, writer_task)
            stack.callback(parts.rules.checkpoint)

            background_stop = asyncio.Event()
            work = {
                "rules": parts.rules.run(background_stop),
                "notifications": parts.notifications.run(background_stop),
                "backfill": parts.writer.backfill(background_stop),
                "devices": parts.devices.run(background_stop),
                "housekeeping": _housekeeping(parts, background_stop),
                "modbus": parts.modbus.run(background_stop),
            }
            if parts.sparkplug is not None:
                work["sparkplug"] = parts.sparkplug.run(background_stop)
            background = {writer_task, *_tasks(**work)}
            stack.push_async_callback(_stop_background, background_stop, background - {writer_task})

            try:
                await parts.http.start()
            except OSError as exc:  # taken since the check: one line, not a traceback
                raise SourceError([preflight.listen_problem(self.loaded, exc)]) from None
            stack.push_async_callback(parts.http.stop)

            # Everything built so far lives as long as the gateway: keep the garbage
            # collector from walking it again and again under load.
            gc.freeze()
            # The event loop (MQTT ingest, rules, writes) shares the GIL with paho's network
            # thread of the link (commands out, their acknowledgements in) and the executor's
            # (outbox writes). With the default 5 ms switch interval each waits up to 5 ms
            # for the loop to let go; 1 ms keeps a command's answer from waiting on a batch.
            sys.setswitchinterval(0.001)
            parts.dispatcher.start()
            parts.source.start(parts.pipeline.on_message, parts.pipeline.on_batch)
            stack.push_async_callback(_stop_receiving, parts)
            self.ready.set()

            await _until_stopped(stop, background)
        log.info("stopped")

    def reload_rules(self) -> None:
        """SIGHUP: re-read the rule files now."""
        if self._parts is not None:
            self._parts.rules.ask_reload()


def raise_open_files_limit() -> None:
    """Lift the soft limit on open files to the hard one, and say what it is.

    Every HTTP connection, the broker's, InfluxDB's and the journal take one; the
    soft limit is often 1024 while the hard one (systemd's ``LimitNOFILE``) is far
    higher, and running out makes the server refuse every new connection.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == hard:
        log.info("open files: at most %s", _files(hard))
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError) as exc:
        log.warning("open files: at most %s; raising it to the hard limit %s failed: %s",
                    _files(soft), _files(hard), exc)
        return
    log.info("open files: at most %s (raised from %s to the hard limit)", _files(hard),
             _files(soft))


def _files(limit: int) -> str:
    return "unlimited" if limit == resource.RLIM_INFINITY else str(limit)


def _tasks(**coroutines: Coroutine[Any, Any, None]) -> set[asyncio.Task[None]]:
    return {asyncio.create_task(c, name=name) for name, c in coroutines.items()}


async def _in_thread(blocking: Any) -> None:
    await asyncio.get_running_loop().run_in_executor(None, blocking)


async def _stop_receiving(parts: wiring.Components) -> None:
    log.info(
        "stopping: flushing %d queued messages and %d buffered readings",
        parts.pipeline.pending,
        parts.writer.buffered,
    )
    parts.source.stop_receiving()
    while parts.pipeline.pending:
        parts.pipeline.drain()
        await asyncio.sleep(0)


async def _until_stopped(stop: asyncio.Event, tasks: set[asyncio.Task[None]]) -> None:
    """Wait for ``stop``. A task with nothing to do may end (no outbox: no backfill);
    a task that fails stops the gateway, and its error is what the caller sees."""
    stop_task = asyncio.create_task(stop.wait())
    watched = set(tasks)
    try:
        while True:
            done, watched = await asyncio.wait(
                watched | {stop_task}, return_when=asyncio.FIRST_COMPLETED
            )
            if stop_task in done:
                return
            for task in done:
                task.result()  # raises what stopped it
            watched.discard(stop_task)
    finally:
        stop_task.cancel()


async def _stop_background(stop: asyncio.Event, tasks: set[asyncio.Task[None]]) -> None:
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _stop_writer(parts: wiring.Components, task: asyncio.Task[None]) -> None:
    if not task.done():
        await parts.writer.stop(timeout=10.0)
    await asyncio.gather(task, return_exceptions=True)


async def _housekeeping(parts: wiring.Components, stop: asyncio.Event) -> None:
    """Once a second: the outbox's drop counters, and messages held for an unset clock."""
    m = parts.metrics
    outbox = parts.outbox
    # The outbox's own drop counters, as outpost_dropped_total{reason="outbox_…"}.
    counted = {"outbox_full": 0, "outbox_age": 0, "outbox_damaged": 0, "outbox_fallback": 0}
    salvage = outbox.recovery if outbox is not None else None
    if salvage is not None:  # rows a damaged file lost at open (an estimate: recovery.py)
        m.dropped.labels("outbox_damaged").inc(salvage.lost_estimate + salvage.bad_rows)
    while not stop.is_set():
        parts.pipeline.release_held()
        if outbox is not None:
            stats = outbox.stats()
            totals = {
                "outbox_full": stats.dropped_full,
                "outbox_age": stats.dropped_age,
                "outbox_damaged": stats.dropped_damaged,
                "outbox_fallback": stats.dropped_fallback,
            }
            for reason, total in totals.items():
                if total > counted[reason]:
                    m.dropped.labels(reason).inc(total - counted[reason])
                    counted[reason] = total
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)
