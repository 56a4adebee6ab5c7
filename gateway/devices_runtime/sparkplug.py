"""Sparkplug B in the running gateway: the host state machine, and the I/O it asks for.

The state machine (:class:`devices.sparkplug.host.SparkplugHost`) is pure; this module
owns everything around it:

- **Decoding.** Each ``format: sparkplug`` input decodes through :meth:`SparkplugRuntime
  .decoder` (on the ingest connection's thread, in broker order). What a message's
  step asks besides its readings is done at once: rebirth requests (NCMD) are
  published on the link, births and deaths go to the device registry as online and
  offline, misbehaviour is logged once per edge node; a refused message raises its
  DecodeError, so the pipeline dead-letters it with the reason and counts it.
- **Commands.** The dispatcher gets :attr:`SparkplugRuntime.convention` for every
  ``convention: sparkplug`` device: the same host, so a DCMD carries the aliases and
  is checked against the datatypes the births taught it.
- **Rebirth timeouts.** :meth:`SparkplugRuntime.run` ticks the host once a second.
- **Primary host STATE** (Sparkplug 3.0.0 §4.2.1, §5.2): :class:`HostState` is the
  link connection's presence. Before each connection attempt the will becomes
  ``{"online": false, "timestamp": T}`` with T the attempt's time; once subscribed
  (its own STATE topic included) it publishes ``{"online": true, "timestamp": T}``
  with the same T, retained at QoS 1; a clean stop says ``online: false`` with the
  time of the stop. Should the broker ever hand it an ``online: false`` of its own
  (an older session's will), it says ``online: true`` again.

One lock serialises the host: the ingest thread decodes, the event loop ticks and
encodes commands.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from devices.conventions.sparkplug import SparkplugConvention
from devices.decoding import Message
from devices.model import Reading
from devices.sparkplug.host import SparkplugHost, Step
from devices.sparkplug.topic import state_topic
from gateway.config.schema import SparkplugConfig
from gateway.devices_runtime.runtime import DevicesRuntime
from gateway.metrics import Family, Sample
from gateway.mqtt.link import MqttLink
from gateway.retry import Backoff

log = logging.getLogger("outpost.sparkplug")

REBIRTH_WAIT_CAP = 300.0  # seconds: the longest wait for the answer to a rebirth request

FAMILIES = (
    Family("outpost_sparkplug_rebirth_requests", "Rebirth requests (NCMD Node Control/"
           "Rebirth) sent to edge nodes, by reason", ("reason",), "counter"),
    Family("outpost_sparkplug_anomalies", "Edge-node misbehaviour seen, by kind "
           "(bdseq_mismatch, ddeath_without_seq, prefixed_names, rebirth_unanswered …)",
           ("kind",), "counter"),
    Family("outpost_sparkplug_metrics_skipped", "Sparkplug metrics not stored, by reason "
           "(unsupported_datatype, out_of_range, null, transient …)", ("reason",), "counter"),
    Family("outpost_sparkplug_nodes", "Edge nodes known, by state (online, offline, "
           "awaiting_rebirth)", ("state",)),
)  # fmt: skip


class SparkplugRuntime:
    """The gateway's Sparkplug host; see the module docstring."""

    families = FAMILIES

    def __init__(
        self,
        config: SparkplugConfig,
        link: MqttLink,
        devices: DevicesRuntime,
        *,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        wait = Backoff(base=config.rebirth_timeout, cap=REBIRTH_WAIT_CAP, jitter=0.0).delay
        self.host = SparkplugHost(wait=wait)
        self.convention = SparkplugConvention(host=self.host, clock=clock)
        self._link = link
        self._devices = devices
        self._clock = clock
        self._lock = threading.Lock()
        self.state: HostState | None = None
        if config.host_id is not None:
            self.state = HostState(config.host_id, clock)
            link.set_presence(self.state)
            link.subscribe([self.state.topic], self._on_own_state)

    # --- decoding (the ingest thread) ------------------------------------------------

    def decoder(self, options: Mapping[str, Any]) -> _InputDecoder:
        """The decoder of one ``format: sparkplug`` input (its ``tags:`` go on its readings)."""
        return _InputDecoder(self, dict(options.get("tags") or {}))

    def decode(self, message: Message, tags: Mapping[str, str]) -> list[Reading]:
        with self._lock:
            step = self.host.receive(
                message.topic, message.payload, message.received_ns, tags, message.trace_id
            )
        self._carry_out(step)
        if step.refusal is not None:
            raise step.refusal
        return step.readings

    def _carry_out(self, step: Step) -> None:
        for publish in step.publishes:
            self._link.publish(publish.topic, publish.payload, publish.qos, publish.retain)
        for status in step.availability:
            self._devices.observe_availability(status, "sparkplug")
        for note in step.notes:
            log.warning("%s", note)

    # --- rebirth timeouts (the event loop) ---------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with self._lock:
                step = self.host.tick(self._clock())
            self._carry_out(step)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)

    # --- our own STATE -------------------------------------------------------------------

    def _on_own_state(self, topic: str, payload: bytes) -> None:
        state = self.state
        if state is None or state.stopping:
            return
        try:
            online = json.loads(payload).get("online")
        except (ValueError, AttributeError):
            return
        if online is False:
            log.info("the broker holds an offline STATE of ours (an older session's will); "
                     "announcing online again")  # fmt: skip
            self._link.publish(*state.birth(), qos=1, retain=True)

    # --- metrics ---------------------------------------------------------------------------

    def samples(self) -> Iterator[Sample]:
        host = self.host
        for reason, count in sorted(host.rebirths.items()):
            yield "outpost_sparkplug_rebirth_requests", (reason,), float(count)
        for kind, count in sorted(host.anomalies.items()):
            yield "outpost_sparkplug_anomalies", (kind,), float(count)
        for reason, count in sorted(host.skipped.items()):
            yield "outpost_sparkplug_metrics_skipped", (reason,), float(count)
        states = {"online": 0, "offline": 0, "awaiting_rebirth": 0}
        for node in list(host.nodes.values()):
            states["awaiting_rebirth" if node.online and not node.synced else
                   "online" if node.online else "offline"] += 1  # fmt: skip
        for state, count in states.items():
            yield "outpost_sparkplug_nodes", (state,), float(count)


class _InputDecoder:
    """One input's view of the shared host: its tags, the same sessions."""

    def __init__(self, runtime: SparkplugRuntime, tags: dict[str, str]) -> None:
        self._runtime = runtime
        self._tags = tags

    def decode(self, message: Message) -> list[Reading]:
        return self._runtime.decode(message, self._tags)


class HostState:
    """The primary host's STATE messages for :meth:`MqttLink.set_presence`.

    The timestamp is taken when a connection attempt starts (the will) and repeated
    by the birth that follows on that connection, as the specification requires.
    """

    def __init__(self, host_id: str, clock: Callable[[], int]) -> None:
        self.topic = state_topic(host_id)
        self._clock = clock
        self._session_ms = clock() // 1_000_000
        self.stopping = False

    def _payload(self, online: bool, ms: int) -> bytes:
        return json.dumps({"online": online, "timestamp": ms}).encode()

    def will(self) -> tuple[str, bytes]:
        self._session_ms = self._clock() // 1_000_000
        return self.topic, self._payload(False, self._session_ms)

    def birth(self) -> tuple[str, bytes]:
        return self.topic, self._payload(True, self._session_ms)

    def farewell(self) -> tuple[str, bytes]:
        self.stopping = True
        return self.topic, self._payload(False, max(self._clock() // 1_000_000, self._session_ms))
