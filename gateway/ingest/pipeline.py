"""From MQTT message to stored reading: route → size check → decode → observe → write.

Two threads meet here. ``on_message`` runs on paho's network thread: it
routes the topic to its input, checks the size, decodes, and appends the
result to a bounded queue. The event loop drains that queue in order: each
reading goes to the observers (rules, live views) and to the InfluxDB writer,
together with the message's acknowledgement token. One wake-up of the loop
serves as many messages as have queued, so the hand-over costs little per
message.

Readings a source makes itself (a Modbus poll, on the event loop) enter with
:meth:`Pipeline.put`: no topic to route, nothing to decode, the same queue,
observers and writer after that.

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

from devices.decoding import DecodeError, Decoder, Message
from devices.model import Reading
from gateway.deadletter import DeadLetters
from gateway.influx.lineproto import LineEncoder, Unwritable
from gateway.influx.writer import InfluxWriter
from gateway.ingest.deadband import Deadband
from gateway.ingest.timekeeping import DEADLETTER, TimePolicy, restamp
from gateway.metrics import Metrics
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
    ) -> None:
        self._router: TopicRouter[Input] = TopicRouter([(i.template, i) for i in inputs])
        self._writer = writer
        self._deadletters = deadletters
        self._metrics = metrics
        self._loop = loop
        self._encoder = encoder or LineEncoder()
        self._observers: list[Observer] = []
        self._queue: deque[tuple[list[Reading] | None, object | None, str, Input | None]] = deque()
        # Messages held while the gateway's clock is not yet valid (see gateway.ingest.timekeeping).
        self._held: deque[tuple[list[Reading], object | None, str, Input | None, int, int]] = (
            deque()
        )
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

    # MQTT thread ----------------------------------------------------------------

    def on_message(self, topic: str, payload: bytes, token: object | None) -> None:
        route = self._router.route(topic)
        if route is None:
            self._metrics.messages.labels("", "unmatched").inc()
            self._refuse(
                None,
                topic,
                payload,
                token,
                "no_input",
                "topic matches no input template (an empty level?)",
            )
            return
        spec, fields = route
        if len(payload) > spec.max_payload:
            self._refuse(
                spec,
                topic,
                payload,
                token,
                "too_large",
                f"{len(payload)} bytes > max_payload {spec.max_payload}",
            )
            return
        self._trace_seq += 1
        received = time.time_ns()
        message = Message(
            topic, payload, fields, received, trace_id=f"{self._trace_prefix}{self._trace_seq:x}"
        )
        try:
            readings = spec.decoder.decode(message)
        except DecodeError as exc:
            self._refuse(spec, topic, payload, token, exc.reason, str(exc))
            return
        except Exception as exc:  # a decoder bug must not stop the gateway
            log.exception("decoder %s failed on %s", spec.name, topic[:120])
            self._refuse(spec, topic, payload, token, "decoder_error", type(exc).__name__)
            return
        if received < self._valid_after and any(r.ts == received for r in readings):
            self._hold(readings, token, topic, spec, payload, received)
            return
        checked, reason = spec.time_policy.check(readings, received)
        if reason is not None:
            self._refuse(spec, topic, payload, token, reason, "reading time out of tolerance")
            return
        if checked is not readings:
            self._metrics.time_corrections.labels(spec.time_policy.action).inc()
        if self._device_tags:
            checked = self._with_device_tags(checked)
        self._decoded[spec.name].inc()
        self._readings[spec.name].inc(len(checked))
        self._enqueue(checked, token, topic, spec)

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
            self._held.append((readings, None, topic, None, stamped, time.monotonic_ns()))
            return
        self._enqueue(readings, None, topic, None)

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
        self._enqueue(None, token, topic, None)

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
        self._held.append((readings, token, topic, spec, received, time.monotonic_ns()))

    def release_held(self) -> int:
        """Once the clock is valid, re-stamp held messages with their true arrival time."""
        if not self._held:
            return 0
        now, mono = time.time_ns(), time.monotonic_ns()
        if now < self._valid_after:
            return 0
        released = 0
        while self._held:
            readings, token, topic, spec, wrong, arrived_mono = self._held.popleft()
            right = now - (mono - arrived_mono)
            self._enqueue(restamp(readings, wrong, right), token, topic, spec)
            released += 1
        log.info("the clock is set: %d held messages re-stamped with their arrival time", released)
        return released

    def _enqueue(
        self, readings: list[Reading] | None, token: object | None, topic: str, spec: Input | None
    ) -> None:
        if token is None and len(self._queue) >= self._max_pending:
            self._queue_full.inc(len(readings) if readings else 1)
            return
        self._queue.append((readings, token, topic, spec))
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

    def drain(self) -> None:
        """Process queued messages in order (on the event loop)."""
        queue, writer, encoder, observers = (
            self._queue,
            self._writer,
            self._encoder,
            self._observers,
        )
        done = 0
        while True:
            while queue and done < self._max_batch:
                readings, token, topic, spec = queue.popleft()
                done += 1
                if not readings:
                    writer.add(None, token, topic)
                    continue
                last = len(readings) - 1
                deadband = spec.deadband if spec is not None else None
                for i, reading in enumerate(readings):
                    for observer in observers:
                        try:
                            observer(reading)
                        except Exception:
                            log.exception("reading observer failed")
                    if deadband is not None and not deadband.keep(reading):
                        self._skipped.inc()
                        writer.add(None, token if i == last else None, topic)
                        continue
                    try:
                        line = encoder.encode(reading)
                    except Unwritable as exc:
                        self._deadletters.send(topic, repr(reading).encode(), exc.reason, str(exc))
                        line = None
                    writer.add(line, token if i == last else None, topic)
            if done >= self._max_batch and queue:
                # Let the writer and other tasks run before the next slice.
                self._loop.call_soon(self.drain)
                return
            self._scheduled = False
            if not queue:
                return
            self._scheduled = True
