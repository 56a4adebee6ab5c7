"""Batches line protocol to InfluxDB, acknowledging messages only once stored.

Entries arrive in message order, each with the acknowledgement token of its
MQTT message (or None for QoS 0). A batch is written when it holds
``batch_size`` lines, when its first line is ``flush_interval`` old, or when
QoS 1 messages are waiting and no new message came for ``idle_flush`` — the
broker stops sending once its in-flight window is full of unacknowledged
messages, so waiting for a full batch would stall the stream.

Batches are written one at a time, oldest first, so acknowledgements go out
in the order the messages came (MQTT requires PUBACKs in order). A batch that
InfluxDB refuses as bad (400) or too large (413) is split in halves until the
refused lines are alone; each is dead-lettered and the rest is written.
Other failures keep the batch and retry with capped exponential backoff and
jitter, honouring ``Retry-After``. With an outbox the failed batch goes to disk
instead, and the backfill task waits out the same delay (``Retry-After``, else the
backoff) before its next attempt: no write is tried before it has passed.

Nothing a batch meets stops the writer. A line that cannot be sent as UTF-8 (a lone
surrogate) is dead-lettered when it is added (``invalid_text``) and never enters a
batch. An exception the sink was not meant to raise (a server in front of InfluxDB
answering a login page where JSON was expected, a bug) counts as a failed write of
kind ``internal``: the batch is kept and retried like any other failed write, and
the traceback is logged once per place it comes from.

Memory is bounded by ``max_buffer`` lines. QoS 1 lines are bounded by the
broker's in-flight window; past the bound the oldest QoS 0 lines are dropped
and counted (``outpost_dropped_total{reason="buffer_full"}``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from devices.model import InvalidReading, check_text
from gateway.deadletter import DeadLetters
from gateway.health import Health
from gateway.influx.sink import InfluxSink, WriteError
from gateway.logsetup import FirstTraceback, Throttled, printable
from gateway.metrics import Family, Metrics, Sample
from gateway.outbox import Buffer, OutboxError, RateLimit, drain
from gateway.retry import Backoff

log = logging.getLogger("outpost.influx")

Token = object
OUTBOX_TOPIC = "outpost/outbox"  # what dead letters of backfilled lines name as their topic
OnAcked = Callable[[list[Token]], None]
OnAuth = Callable[[bool, "int | None"], None]
"""``(True, status)`` when InfluxDB starts refusing the credentials, ``(False, None)`` when
writes succeed again."""
LOG_EVERY = 10.0  # seconds between two lines about failing writes or a full buffer

FAMILIES = (
    Family("outpost_influx_buffered_readings", "Readings waiting to be written to InfluxDB"),
    Family("outpost_influx_up", "1 when the last InfluxDB write succeeded"),
)


@dataclass(slots=True)
class Entry:
    line: str | None  # None: a message that gave no point but whose ack must wait its turn
    token: Token | None
    topic: str


class InfluxWriter:
    def __init__(
        self,
        sink: InfluxSink,
        *,
        batch_size: int,
        flush_interval: float,
        max_buffer: int,
        deadletters: DeadLetters,
        metrics: Metrics,
        on_acked: OnAcked,
        idle_flush: float = 0.05,
        clock: Callable[[], float] = time.monotonic,
        outbox: Buffer | None = None,
        backfill_rate: float = 5000.0,
    ) -> None:
        self._sink = sink
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._max_buffer = max_buffer
        self._deadletters = deadletters
        self._metrics = metrics
        self._on_acked = on_acked
        self._idle_flush = idle_flush
        self._clock = clock
        self._current: list[Entry] = []
        self._current_tokens = 0
        self._first_at = 0.0
        self._last_add = 0.0
        self._queue: deque[list[Entry]] = deque()
        self._buffered = 0
        self._wake = asyncio.Event()
        self._stop_event = asyncio.Event()
        self._stopping = False
        self._deadline = float("inf")
        self._backoff = Backoff()
        self._not_before = float("-inf")  # no write before this (Retry-After or backoff)
        self._log = Throttled(log, LOG_EVERY, clock)
        self.writing: list[Entry] = []  # the batch being written, for inspection
        self.healthy = True
        self.last_write_ok = False  # no write yet
        self._outbox = outbox
        self._backfill_rate = backfill_rate
        self._auth_failing = False
        self._on_auth: OnAuth | None = None
        self._health = Health("unknown", sink.describe())  # "unknown" until a write ends
        self._tracebacks = FirstTraceback(log)

    def health(self) -> Health:
        """InfluxDB's state as the writes found it, with the last failure's reason."""
        return self._health

    @property
    def buffered(self) -> int:
        return self._buffered

    families = FAMILIES

    def samples(self) -> Iterator[Sample]:
        yield "outpost_influx_buffered_readings", (), float(self._buffered)
        yield "outpost_influx_up", (), 1.0 if self.last_write_ok else 0.0

    def add(self, line: str | None, token: Token | None, topic: str) -> None:
        """Queue one line (or, with ``line=None``, one acknowledgement) in arrival order."""
        if line is not None and not line.isascii():
            line = self._sendable(line, topic)
        now = self._clock()
        first = not self._current
        if first:
            self._first_at = now
        self._last_add = now
        self._current.append(Entry(line, token, topic))
        if token is not None:
            self._current_tokens += 1
        if line is not None:
            self._buffered += 1
            if self._buffered > self._max_buffer:
                self._drop_oldest_best_effort()
        if len(self._current) >= self._batch_size:
            self._seal()
            self._wake.set()
        elif first or (token is not None and self._current_tokens == 1):
            self._wake.set()  # start this batch's flush_interval (or idle-flush) clock

    def _sendable(self, line: str, topic: str) -> str | None:
        """The line, or None (dead-lettered) if it cannot be sent as UTF-8."""
        try:
            check_text("line", line)
        except InvalidReading as exc:
            self._deadletters.send(
                topic, line.encode("utf-8", "backslashreplace"), exc.reason, str(exc)
            )
            return None
        return line

    def _seal(self) -> None:
        self._queue.append(self._current)
        self._current = []
        self._current_tokens = 0

    def _drop_oldest_best_effort(self) -> None:
        target = self._max_buffer * 9 // 10
        dropped = 0
        for batch in self._queue:
            kept = []
            for entry in batch:
                if (
                    self._buffered - dropped > target
                    and entry.line is not None
                    and entry.token is None
                ):
                    dropped += 1
                else:
                    kept.append(entry)
            batch[:] = kept
            if self._buffered - dropped <= target:
                break
        self._buffered -= dropped
        if dropped:
            self._metrics.dropped.labels("buffer_full").inc(dropped)
            self._log.log(
                "buffer_full",
                logging.WARNING,
                "InfluxDB buffer full (%d readings): dropped the %d oldest QoS 0 readings",
                self._max_buffer,
                dropped,
                count=dropped,
            )

    async def run(self) -> None:
        """Write batches until :meth:`stop`; then flush what is left (within the deadline)."""
        await self._sink.open()
        try:
            while True:
                now = self._clock()
                if not self._queue and self._current:
                    due = self._first_at + self._flush_interval
                    idle = self._current_tokens and now - self._last_add >= self._idle_flush
                    if self._stopping or now >= due or idle:
                        self._seal()
                if self._queue:
                    await self._guarded(self._queue.popleft())
                    continue
                if self._stopping:
                    return
                timeout = None
                if self._current:
                    timeout = max(0.0, self._first_at + self._flush_interval - now)
                    if self._current_tokens:
                        timeout = min(timeout, max(0.0, self._last_add + self._idle_flush - now))
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)
        finally:
            await self._sink.close()

    async def stop(self, timeout: float = 10.0) -> None:
        """Ask :meth:`run` to flush everything and return; gives up after ``timeout``."""
        self._stopping = True
        self._deadline = self._clock() + timeout
        self._wake.set()
        self._stop_event.set()

    async def _guarded(self, batch: list[Entry]) -> None:
        """Write a batch; whatever goes wrong, keep it (unless stopping) and carry on."""
        try:
            await self._write_batch(batch)
        except Exception as exc:  # a bug: the writer must outlive it
            delay = self._failed(self._internal(exc))
            if self._stopping:
                log.error("shutting down with a batch of %d entries not written", len(batch))
                return
            self._queue.appendleft(batch)
            await self._sleep(delay)

    def _internal(self, exc: Exception) -> WriteError:
        """An exception nothing expected, as a failed write (its traceback once per place)."""
        self._tracebacks.log(exc, "unexpected %s while writing to InfluxDB", type(exc).__name__)
        return WriteError("internal", printable(f"{type(exc).__name__}: {exc}"))

    async def _write_batch(self, batch: list[Entry]) -> None:
        self.writing = batch
        lines = [e for e in batch if e.line is not None]
        # InfluxDB is down: straight to disk, no need to wait for another timeout.
        down = self._outbox is not None and not self.healthy and lines
        if down and await self._to_outbox(batch, lines):
            return
        while True:
            try:
                await self._write_entries(lines)
                break
            except WriteError as exc:
                delay = self._failed(exc)
                if self._outbox is not None and await self._to_outbox(batch, lines):
                    return
                if self._stopping and self._clock() + delay > self._deadline:
                    log.error(
                        "shutting down with %d readings not written to InfluxDB (%s); "
                        "QoS 1 messages stay unacknowledged and will be redelivered",
                        self._buffered,
                        printable(exc),
                    )
                    self._buffered -= len(lines)
                    return
                self._log.log(
                    "write_failed",
                    logging.ERROR,
                    "InfluxDB write failed (%s): %s; %d readings waiting, retry in %.1fs%s",
                    exc.kind,
                    printable(exc),
                    self._buffered,
                    delay,
                    _hint(exc),
                )
                await self._sleep(delay)
        self._succeeded()
        self._done(batch, lines)

    def _done(self, batch: list[Entry], lines: list[Entry]) -> None:
        self._buffered -= len(lines)
        tokens = [e.token for e in batch if e.token is not None]
        if tokens:
            self._on_acked(tokens)

    def _failed(self, exc: WriteError) -> float:
        """Count a failed write; returns the wait before the next one (also kept for backfill)."""
        self._metrics.influx_errors.labels(exc.kind).inc()
        self.last_write_ok = False
        self._health = self._health.failed(f"{exc.kind}: {exc}", time.time_ns())
        if self.healthy and self._outbox is not None:
            log.error(
                "InfluxDB write failed (%s): %s; readings go to the outbox until it "
                "answers again%s",
                exc.kind,
                printable(exc),
                _hint(exc),
            )
        self.healthy = False
        if exc.kind == "auth" and not self._auth_failing:
            self._auth_failing = True
            self._report_auth(True, exc.status)
        delay = exc.retry_after if exc.retry_after is not None else self._backoff.next()
        self._not_before = self._clock() + delay
        return delay

    def _succeeded(self) -> None:
        self._backoff.reset()
        self._health = self._health.succeeded(time.time_ns())
        if not self.healthy:
            log.info("InfluxDB writes succeed again")
        self.healthy = True
        self.last_write_ok = True
        if self._auth_failing:
            self._auth_failing = False
            self._report_auth(False, None)

    def watch_auth(self, callback: OnAuth) -> None:
        """Call ``callback`` when InfluxDB starts or stops refusing the credentials."""
        self._on_auth = callback

    def _report_auth(self, failing: bool, status: int | None) -> None:
        # After the current write has finished, never from inside it: what the callback
        # does (an alert, itself written to InfluxDB) must not re-enter this batch.
        if self._on_auth is not None:
            asyncio.get_running_loop().call_soon(self._on_auth, failing, status)

    async def _to_outbox(self, batch: list[Entry], lines: list[Entry]) -> bool:
        """Make a batch durable in the outbox and acknowledge it; False if the outbox refused."""
        assert self._outbox is not None
        try:
            await self._outbox.append_durable([e.line for e in lines if e.line is not None])
        except OutboxError as exc:
            log.error("outbox refused %d readings (%s); holding them in memory", len(lines), exc)
            return False
        self._metrics.outbox_appended.inc(len(lines))
        self._done(batch, lines)
        return True

    async def backfill(self, stop: asyncio.Event) -> None:
        """Send what waits in the outbox at ``backfill_rate`` lines/s, next to the live path."""
        if self._outbox is None:
            return
        limit = RateLimit(self._backfill_rate, self._batch_size, self._clock())

        async def write(lines: list[str]) -> None:
            try:
                await self._write_entries([Entry(line, None, OUTBOX_TOPIC) for line in lines])
            except WriteError as exc:
                self._failed(exc)
                raise
            self._succeeded()
            self._metrics.outbox_backfilled.inc(len(lines))

        if len(self._outbox):
            log.info(
                "%d readings wait in the outbox from an earlier outage; sending them at up to %d/s",
                len(self._outbox),
                self._backfill_rate,
            )
        # Retry-After, or the backoff after a failure, before the next batch is taken.
        await drain(
            self._outbox,
            write,
            limit,
            stop=stop,
            retry_delay=0.0,
            clock=self._clock,
            hold_off=lambda: self._not_before - self._clock(),
        )

    async def _write_entries(self, entries: list[Entry]) -> None:
        if not entries:
            return
        body = "\n".join(e.line for e in entries if e.line is not None)
        started = time.perf_counter()
        try:
            await self._sink.write(body)
        except WriteError as exc:
            if not exc.splittable:
                raise
            if len(entries) > 1:
                mid = len(entries) // 2
                await self._write_entries(entries[:mid])
                await self._write_entries(entries[mid:])
                return
            entry = entries[0]
            reason = "influx_rejected" if exc.kind == "bad_points" else "influx_too_large"
            self._deadletters.send(
                entry.topic, (entry.line or "").encode("utf-8"), reason, str(exc)
            )
            return
        except Exception as exc:  # not a WriteError: the sink met something it did not expect
            raise self._internal(exc) from exc
        self._metrics.influx_write_seconds.observe(time.perf_counter() - started)
        self._metrics.points_written.inc(len(entries))

    async def _sleep(self, delay: float) -> None:
        # Not self._wake: new readings must not cut a retry pause short.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop_event.wait(), delay)


def _hint(exc: WriteError) -> str:
    if exc.kind == "auth":
        return " — check the InfluxDB credentials; readings are kept and retried"
    return ""
