"""From MQTT message to stored reading: route → size check → decode → observe → write.

Two threads can meet here. ``on_message`` runs on a source's own thread: it
routes the topic to its input, checks the size, decodes, and appends the
result to a bounded queue (a source on the event loop calls ``on_batch``). The
event loop drains that queue in order: it writes a message's readings as line
protocol, and once all of them can be stored, each reading goes to the observers
(rules, live views) and to the InfluxDB writer, together with the message's
acknowledgement token. One wake-up of the loop serves as many messages as have
queued, so the hand-over costs little per message.

Readings a source makes itself (a Modbus poll, on the event loop) enter with
:meth:`Pipeline.put`: no topic to route, nothing to decode, the same queue,
observers and writer after that.

A message is stored whole or not at all. It is refused — dead-lettered with a
reason, counted, its acknowledgement kept in order — when its topic or payload is
bad, when it decodes to more than the input's ``max_readings_per_message``
readings, when one of its readings cannot be written as line protocol, or when it
would add a series past ``influx.max_series`` (:mod:`gateway.ingest.series`). An
exception nothing expected, raised while one message is handled, refuses that
message (``internal_error``) and ingest goes on.

Drop policy of the hand-over queue (``max_pending`` messages): only reachable
when the event loop falls behind a QoS 0 flood. QoS 0 messages beyond it are
dropped and counted (``outpost_dropped_total{reason="queue_full"}``); QoS 1
messages are never dropped here — the broker's in-flight window bounds them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from devices.decoding import Decoder, Message, too_many_readings
from devices.model import InvalidReading, Reading, check_text
from gateway.deadletter import DeadLetters
from gateway.influx.lineproto import LineEncoder, Unwritable
from gateway.influx.writer import InfluxWriter
from gateway.ingest.deadband import Deadband
from gateway.ingest.series import SeriesLimit
from gateway.ingest.timekeeping import DEADLETTER, TimePolicy, restamp
from gateway.metrics import Family, Metrics, Sample
from gateway.topics import TopicRouter, TopicTemplate

log = logging.getLogger("outpost.pipeline")

Observer = Callable[[Reading], None]


@dataclass
class Input:
    """One ``inputs:`` entry, compiled."""

    name: str
    template: TopicTemplate
    decoder: Decoder
    qos: int
    max_payload: int
    time_policy: TimePolicy = field(default_factory=lambda: TimePolicy(300.0, None, "restamp"))
    deadband: Deadband | None = None
    max_readings: int = 256


# A queued message: its readings (None: refused, only its acknowledgement waits), token,
# topic, input and payload (kept to dead-letter it whole if it cannot be written).
Queued = tuple[list[Reading] | None, object | None, str, "Input | None", bytes]

SERIES_FAMILY = Family(
    "outpost_series",
    "Distinct series (metric, device, tags) written since start; influx.max_series caps it",
)


Held = tuple[list[Reading], object | None, str, "Input | None", bytes, int, int]
"""A message held for an unset clock: readings, token, topic, input, payload, the wrong
time it was stamped with, and when it arrived (monotonic)."""


class Pipeline:
    def __init__(
        self,
        inputs: Sequence[Input],
        *,
        writer: InfluxWriter,
        deadletters: DeadLetters,
        metrics: Metrics,
        loop: asyncio.AbstractEventLoop,
        max_pending: int = 100_000,
        max_batch: int = 5000,
        gather_delay: float = 0.002,
        clock_valid_after: int = 0,
        unsynced: str = "hold",
        hold_max: int = 100_000,
        device_tags: Mapping[str, Mapping[str, str]] | None = None,
        encoder: LineEncoder | None = None,
        max_series: int = 100_000,
    ) -> None:
        self._router: TopicRouter[Input] = TopicRouter([(i.template, i) for i in inputs])
        self._writer = writer
        self._deadletters = deadletters
        self._metrics = metrics
        self._loop = loop
        self._encoder = encoder or LineEncoder()
        self._observers: list[Observer] = []
        self._queue: deque[Queued] = deque()
        # Messages held while the gateway's clock is not yet valid (see gateway.ingest.timekeeping).
        self._held: deque[Held] = deque()
        self._series = SeriesLimit(max_series)
        metrics.read_at_scrape([SERIES_FAMILY], self._series_samples)
        self._valid_after = clock_valid_after
        self._unsynced = unsynced
        self._hold_max = hold_max
        self._device_tags = {d: dict(t) for d, t in (device_tags or {}).items() if t}
        self._max_pending = max_pending
        self._max_batch = max_batch
        self._gather_delay = gather_delay
        self._scheduled = False
        self._trace_prefix = os.urandom(4).hex()
        self._trace_seq = 0
        self._decoded = {i.name: metrics.messages.labels(i.name, "decoded") for i in inputs}
        self._rejected = {i.name: metrics.messages.labels(i.name, "deadlettered") for i in inputs}
        self._readings = {i.name: metrics.readings.labels(i.name) for i in inputs}
        self._queue_full = metrics.dropped.labels("queue_full")
        self._unsynced_drop = metrics.dropped.labels("clock_unsynced")
        self._own_readings: dict[str, Any] = {}  # source name → its readings counter
        self._skipped = metrics.skipped.labels("deadband")

    def add_observer(self, observer: Observer) -> None:
        """Call ``observer(reading)`` on the event loop for every decoded reading."""
        self._observers.append(observer)

    @property
    def pending(self) -> int:
        return len(self._queue)

    def _series_samples(self) -> list[Sample]:
        return [(SERIES_FAMILY.name, (), float(len(self._series)))]

    # MQTT thread ----------------------------------------------------------------

    def on_message(self, topic: str, payload: bytes, token: object | None) -> None:
        spec: Input | None = None
        received = time.time_ns()
        try:
            route = self._router.route(topic)
            if route is None:
                self._metrics.messages.labels("", "unmatched").inc()
                raise InvalidReading(
                    "no_input", "topic matches no input template (an empty level?)"
                )
            spec, fields = route
            readings = self._decode(spec, topic, payload, fields, received)
            held = received < self._valid_after and any(r.ts == received for r in readings)
            if not held:  # a held message is checked once the clock is set and it is re-stamped
                readings = self._check_time(spec, readings, received)
        except InvalidReading as exc:
            self._refuse(spec, topic, payload, token, exc.reason, str(exc))
            return
        except Exception as exc:  # a bug must cost one message, not the gateway
            self._failed(spec, topic, payload, token, exc)
            return
        if held:
            self._hold(readings, token, topic, spec, payload, received)
        else:
            self._enqueue(readings, token, topic, spec, payload)

    def _decode(
        self, spec: Input, topic: str, payload: bytes, fields: dict[str, str], received: int
    ) -> list[Reading]:
        """The message's readings; raises InvalidReading to refuse it whole."""
        check_text("topic", topic)
        if len(payload) > spec.max_payload:
            raise InvalidReading(
                "too_large", f"{len(payload)} bytes > max_payload {spec.max_payload}"
            )
        self._trace_seq += 1
        message = Message(
            topic, payload, fields, received, trace_id=f"{self._trace_prefix}{self._trace_seq:x}"
        )
        readings = spec.decoder.decode(message)
        if len(readings) > spec.max_readings:
            raise too_many_readings(spec.max_readings, len(readings))
        return self._with_device_tags(readings) if self._device_tags else readings

    def _check_time(self, spec: Input, readings: list[Reading], received: int) -> list[Reading]:
        checked, reason = spec.time_policy.check(readings, received)
        if reason is not None:
            raise InvalidReading(reason, "reading time out of tolerance")
        if checked is not readings:
            self._metrics.time_corrections.labels(spec.time_policy.action).inc()
        return checked

    def put(self, readings: list[Reading], source: str = "modbus") -> None:
        """Readings made by the gateway itself (a Modbus poll), stamped with its clock.

        They join the queue in order with the decoded messages; while the clock is not
        valid yet they are held and re-stamped like arrival-stamped readings (or dropped
        and counted as ``clock_unsynced`` under ``unsynced: deadletter``: there is no
        message to dead-letter).
        """
        if not readings:
            return
        counter = self._own_readings.get(source)
        if counter is None:
            counter = self._own_readings[source] = self._metrics.readings.labels(source)
        counter.inc(len(readings))
        if self._device_tags:
            readings = self._with_device_tags(readings)
        topic = readings[0].topic
        stamped = readings[0].ts
        if stamped < self._valid_after:
            if self._unsynced == DEADLETTER or len(self._held) >= self._hold_max:
                self._unsynced_drop.inc(len(readings))
                return
            self._metrics.held.inc()
            self._held.append((readings, None, topic, None, b"", stamped, time.monotonic_ns()))
            return
        self._enqueue(readings, None, topic, None, b"")

    def _refuse(
        self,
        spec: Input | None,
        topic: str,
        payload: bytes,
        token: object | None,
        reason: str,
        detail: str,
    ) -> None:
        """Dead-letter a message; its acknowledgement still waits its turn in the queue."""
        if spec is not None:
            self._rejected[spec.name].inc()
        self._deadletters.send(topic, payload, reason, detail)
        self._enqueue(None, token, topic, None, b"")

    def _failed(
        self, spec: Input | None, topic: str, payload: bytes, token: object | None, exc: Exception
    ) -> None:
        """Dead-letter a message whose handling raised ``exc`` (``internal_error``)."""
        if spec is not None:
            self._rejected[spec.name].inc()
        self._deadletters.failed(topic, payload, exc)
        self._enqueue(None, token, topic, None, b"")

    def _with_device_tags(self, readings: list[Reading]) -> list[Reading]:
        """Add the ``tags:`` of the device's ``devices:`` entry (the reading's own win)."""
        tags = self._device_tags
        if not any(r.device in tags for r in readings):
            return readings
        return [
            dataclasses.replace(r, tags={**tags[r.device], **r.tags}) if r.device in tags else r
            for r in readings
        ]

    def _hold(
        self,
        readings: list[Reading],
        token: object | None,
        topic: str,
        spec: Input,
        payload: bytes,
        received: int,
    ) -> None:
        if self._unsynced == DEADLETTER or len(self._held) >= self._hold_max:
            self._refuse(
                spec,
                topic,
                payload,
                token,
                "clock_unsynced",
                "the gateway's clock is not set yet (no NTP answer)",
            )
            return
        self._metrics.held.inc()
        self._held.append((readings, token, topic, spec, payload, received, time.monotonic_ns()))

    def release_held(self) -> int:
        """Once the clock is valid, re-stamp held messages with their true arrival time."""
        if not self._held:
            return 0
        now, mono = time.time_ns(), time.monotonic_ns()
        if now < self._valid_after:
            return 0
        released = 0
        while self._held:
            readings, token, topic, spec, payload, wrong, arrived_mono = self._held.popleft()
            right = now - (mono - arrived_mono)
            self._enqueue(restamp(readings, wrong, right), token, topic, spec, payload)
            released += 1
        log.info("the clock is set: %d held messages re-stamped with their arrival time", released)
        return released

    def _enqueue(
        self,
        readings: list[Reading] | None,
        token: object | None,
        topic: str,
        spec: Input | None,
        payload: bytes,
    ) -> None:
        if token is None and len(self._queue) >= self._max_pending:
            self._queue_full.inc(len(readings) if readings else 1)
            return
        self._queue.append((readings, token, topic, spec, payload))
        if not self._scheduled:
            self._scheduled = True
            try:
                self._loop.call_soon_threadsafe(self._drain_soon)
            except RuntimeError:  # loop closed during shutdown
                self._scheduled = False

    def _drain_soon(self) -> None:
        # Waking the event loop from another thread costs a pipe write and a
        # select; waiting a moment lets one wake-up serve many messages.
        self._loop.call_later(self._gather_delay, self.drain)

    # event loop -------------------------------------------------------------------

    def on_batch(self, messages: Sequence[tuple[str, bytes, object | None]]) -> None:
        """:meth:`on_message` for each of ``messages``, from a source on the event loop.

        They join the same queue, in order and under the same drop policy, but nothing
        has to wake the loop from another thread: the queue is drained right away.
        """
        scheduled, self._scheduled = self._scheduled, True  # no wake-up per message
        try:
            for topic, payload, token in messages:
                self.on_message(topic, payload, token)
        finally:
            self._scheduled = scheduled
        self.drain()

    def drain(self) -> None:
        """Process queued messages in order (on the event loop)."""
        queue, writer = self._queue, self._writer
        done = 0
        while True:
            while queue and done < self._max_batch:
                readings, token, topic, spec, payload = queue.popleft()
                done += 1
                if not readings:  # an acknowledgement waiting its turn
                    writer.add(None, token, topic)
                    continue
                # spec None: readings a source made itself (Pipeline.put)
                try:
                    lines = self._lines(readings, spec)
                except (InvalidReading, Unwritable) as exc:
                    if spec is not None:
                        self._rejected[spec.name].inc()
                    self._deadletters.send(topic, payload, exc.reason, str(exc))
                    writer.add(None, token, topic)
                    continue
                except Exception as exc:  # a bug must cost one message, not the gateway
                    if spec is not None:
                        self._rejected[spec.name].inc()
                    self._deadletters.failed(topic, payload, exc)
                    writer.add(None, token, topic)
                    continue
                self._store(readings, lines, token, topic, spec)
            if done >= self._max_batch and queue:
                # Let the writer and other tasks run before the next slice.
                self._loop.call_soon(self.drain)
                return
            self._scheduled = False
            if not queue:
                return
            self._scheduled = True

    def _lines(self, readings: list[Reading], spec: Input | None) -> list[str | None]:
        """Every reading's line (None: skipped by the deadband), or a refusal of them all."""
        encode = self._encoder.encode
        lines: list[str | None] = []
        for reading in readings:
            line = encode(reading)
            if not line.isascii():
                check_text("reading", line)  # a lone surrogate cannot be sent as UTF-8
            lines.append(line)
        self._series.admit(readings)
        deadband = spec.deadband if spec is not None else None
        if deadband is not None:
            for i, reading in enumerate(readings):
                if not deadband.keep(reading):
                    lines[i] = None
        return lines

    def _store(
        self,
        readings: list[Reading],
        lines: list[str | None],
        token: object | None,
        topic: str,
        spec: Input | None,
    ) -> None:
        """Hand an accepted message to the observers and, with its token last, to the writer."""
        if spec is not None:  # put() counted its own
            self._decoded[spec.name].inc()
            self._readings[spec.name].inc(len(readings))
        writer, observers = self._writer, self._observers
        last = len(readings) - 1
        for i, reading in enumerate(readings):
            for observer in observers:
                try:
                    observer(reading)
                except Exception:
                    log.exception("reading observer failed")
            line = lines[i]
            if line is None:
                self._skipped.inc()
            writer.add(line, token if i == last else None, topic)
