"""The paced MQTT loop of ``outpost simulate``: models → payloads → links.

Pacing is an absolute schedule: sample slot ``j`` (of all devices, round
robin) is due at ``start + j / (rate × devices)`` wall seconds, so an
overslept wake-up is caught up on the next one and the rate never drifts.
Slot ``j`` is also the sample's simulated time, ``j / (rate × devices) ×
speed``, and its ``ts`` is the slot's wall time: values depend only on the
seed and the schedule, never on how loaded the machine was.

Actuators (``actuators.Actuator`` models) are also listened to: a command on
``devices/{id}/set`` is applied at the simulated time of its arrival, acked on
``devices/{id}/ack`` (QoS 1), and the actuator's new state is published at
once rather than at its next slot. A ``FaultPlan`` filters every sample and
command, and takes links offline at the wall time of each ``offline`` fault.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiomqtt

from simulators.actuators import Actuator, encode_ack
from simulators.faults import FaultPlan, OfflineFault
from simulators.link import Broker, Link
from simulators.model import Model
from simulators.payloads import Style, ack_topic, encode_sample, set_topic

log = logging.getLogger("outpost.simulator")

# Up to this many devices get one connection each (own client id, own will);
# beyond it they share one. See simulators/README.md for the trade-off.
PER_DEVICE_LIMIT = 50
# Messages published per wake-up at most (a sample may be several), so a
# catch-up burst still lets the event loop breathe (status, keepalives,
# Ctrl-C); aiomqtt's bookkeeping is quadratic in concurrent publishes.
MAX_BATCH = 50
# Further behind schedule than this (a suspended laptop, a stalled VM), the
# missed samples are skipped rather than replayed in a burst of stale
# timestamps: a real sensor does not measure while it is asleep either.
CATCH_UP_LIMIT = 5.0


@dataclass
class SimStats:
    samples: int = 0
    messages: int = 0
    dropped: int = 0
    elapsed: float = 0.0
    skipped: int = 0  # samples skipped after falling CATCH_UP_LIMIT behind
    suppressed: int = 0  # samples a fault withheld (dropout, offline)
    commands: int = 0  # actuator commands answered (ok or not)
    ignored: int = 0  # actuator commands an ignore_commands fault swallowed
    connected: bool = False  # False: the broker was never reached


@dataclass
class SimOptions:
    rate: float = 1.0  # samples per second per device
    speed: float = 1.0  # simulated seconds per wall second
    style: Style = Style.JSON
    qos: int = 0
    ts_unit: str = "ms"
    count: int | None = None  # stop after this many samples (all devices)
    duration: float | None = None  # stop after this many wall seconds
    connections: str = "auto"  # "auto" | "device" | "shared"
    log_interval: float = 10.0
    description: str = field(default="")

    def per_device(self, devices: int) -> bool:
        if self.connections == "auto":
            return devices <= PER_DEVICE_LIMIT
        return self.connections == "device"


class Simulation:
    """Publishes ``models``' samples to ``broker`` on schedule until done or ``stop``."""

    def __init__(
        self,
        models: Sequence[Model],
        broker: Broker,
        options: SimOptions,
        faults: FaultPlan | None = None,
    ) -> None:
        if not models:
            raise ValueError("nothing to simulate: no devices")
        if options.rate <= 0 or options.speed <= 0:
            raise ValueError("rate and speed must be positive")
        self.models = list(models)
        self.broker = broker
        self.options = options
        self.faults = faults or FaultPlan()
        self.stats = SimStats()
        self._t0: float | None = None  # loop time of simulated t = 0
        self.ids = ids = [m.device for m in self.models]
        if options.per_device(len(ids)):
            self.links = [Link(broker, d, [d], will=True) for d in ids]
            self._link_of = list(self.links)
        else:
            shared = Link(broker, f"outpost-sim-{os.getpid()}", ids, will=False)
            self.links = [shared]
            self._link_of = [shared] * len(ids)
        for model, link in zip(self.models, self._link_of, strict=True):
            if isinstance(model, Actuator):
                link.on(set_topic(model.device), self._command_handler(model, link))

    def sim_time(self) -> float:
        """Simulated seconds since the schedule started (0 before it does)."""
        if self._t0 is None:
            return 0.0
        return (asyncio.get_running_loop().time() - self._t0) * self.options.speed

    def _command_handler(
        self, actuator: Actuator, link: Link
    ) -> Callable[[aiomqtt.Message], Coroutine[Any, Any, None]]:
        device = actuator.device

        async def handle(message: aiomqtt.Message) -> None:
            t = self.sim_time()
            if self.faults.ignores_commands(device, t):
                self.stats.ignored += 1
                log.info("%s: ignoring a command (fault ignore_commands)", device)
                return
            payload = message.payload
            if not isinstance(payload, (bytes, bytearray)):
                payload = str(payload).encode()
            ack = actuator.command(bytes(payload), t)
            self.stats.commands += 1
            await link.publish(ack_topic(device), encode_ack(ack), qos=1)
            if ack["ok"]:
                o = self.options
                state = actuator.next(t)
                for topic, body in encode_sample(device, state, o.style, time.time_ns(), o.ts_unit):
                    await link.publish(topic, body, o.qos)
            log.info(
                "%s: command %s at t=%.0f s → %s",
                device,
                ack.get("id"),
                t,
                "ok" if ack["ok"] else f"refused: {ack.get('error')}",
            )

        return handle

    def describe(self) -> str:
        o = self.options
        n = len(self.ids)
        json_topic = f"sensors/{{device}} (JSON, ts in {o.ts_unit})"
        topics = {
            Style.VALUE: "sensors/{device}/{metric}",
            Style.JSON: json_topic,
            Style.BOTH: f"sensors/{{device}}/{{metric}} and {json_topic}",
        }[o.style]
        conn = (
            "one connection per device, will offline on devices/{device}/status"
            if len(self.links) > 1 or self.links[0].will
            else "one shared connection (no per-device will)"
        )
        limits = []
        if o.count is not None:
            limits.append(f"{o.count} samples")
        if o.duration is not None:
            limits.append(f"{o.duration:g} s")
        return (
            f"simulating {n} device{'s' if n != 1 else ''} ({self.ids[0]}…{self.ids[-1]}"
            f"{', ' + o.description if o.description else ''}) → mqtt://{self.broker} "
            f"on {topics}, {o.rate:g} sample/s per device ({o.rate * n:g}/s), "
            f"speed {o.speed:g}x, qos {o.qos}; {conn}"
            + (f"; stops after {' or '.join(limits)}" if limits else "")
        )

    async def run(self, stop: asyncio.Event) -> SimStats:
        """Run until the count or duration is reached or ``stop`` is set; sets ``stop`` on exit."""
        log.info("%s", self.describe())
        link_tasks = [asyncio.create_task(link.run(stop)) for link in self.links]
        reporter = asyncio.create_task(self._report())
        try:
            if await self._wait_connected(stop):
                self.stats.connected = True
                await self._schedule(stop)
        finally:
            stop.set()
            reporter.cancel()
            for link, result in zip(
                self.links, await asyncio.gather(*link_tasks, return_exceptions=True), strict=True
            ):
                if isinstance(result, Exception):
                    log.error("%s: connection failed: %r", link.client_id, result)
            self.stats.dropped = sum(link.dropped for link in self.links)
        s = self.stats
        s.suppressed = self.faults.suppressed
        log.info(
            "stopped: %d samples, %d messages in %.1f s; %d dropped, %d skipped%s",
            s.samples,
            s.messages,
            s.elapsed,
            s.dropped,
            s.skipped,
            (
                f"; {s.commands} commands answered, {s.ignored} ignored, "
                f"{s.suppressed} samples withheld by faults"
                if s.commands or s.ignored or self.faults
                else ""
            ),
        )
        return s

    async def _wait_connected(self, stop: asyncio.Event) -> bool:
        async def all_connected() -> None:
            for link in self.links:
                await link.connected.wait()

        waiters = [asyncio.create_task(all_connected()), asyncio.create_task(stop.wait())]
        # --duration bounds the whole run, connecting included: a script that says
        # "10 s" must not hang on an unreachable broker (--count alone waits).
        await asyncio.wait(
            waiters, timeout=self.options.duration, return_when=asyncio.FIRST_COMPLETED
        )
        connected = waiters[0].done()
        for task in waiters:
            task.cancel()
        if not connected and not stop.is_set():
            log.error("broker %s not reached within --duration", self.broker)
        return connected and not stop.is_set()

    async def _schedule(self, stop: asyncio.Event) -> None:
        o = self.options
        n = len(self.models)
        slot = 1.0 / (o.rate * n)  # wall seconds between two samples (any device)
        last = math.inf
        if o.count is not None:
            last = o.count
        if o.duration is not None:
            last = min(last, math.ceil(o.duration / slot))  # slots strictly before the end
        loop = asyncio.get_running_loop()
        t0 = self._t0 = loop.time()
        wall0 = time.time_ns()
        outages = [asyncio.create_task(self._outage(f, t0)) for f in self.faults.offline()]
        try:
            await self._paced(stop, slot, last, t0, wall0)
        finally:
            for task in outages:
                task.cancel()
        self.stats.elapsed = loop.time() - t0

    async def _outage(self, fault: OfflineFault, t0: float) -> None:
        """Take the device's link down at the fault's start and up at its end."""
        loop = asyncio.get_running_loop()
        link = self._link_of[self.ids.index(fault.device)]
        await asyncio.sleep(max(0.0, t0 + fault.start / self.options.speed - loop.time()))
        log.info("%s: going offline (fault, %s)", fault.device, fault.mode)
        link.go_offline(fault.mode)
        if fault.end is None:
            return
        await asyncio.sleep(max(0.0, t0 + fault.end / self.options.speed - loop.time()))
        log.info("%s: back online (fault ended)", fault.device)
        link.go_online()

    async def _paced(
        self, stop: asyncio.Event, slot: float, last: float, t0: float, wall0: int
    ) -> None:
        o = self.options
        n = len(self.models)
        loop = asyncio.get_running_loop()
        j = 0
        while j < last and not stop.is_set():
            now = loop.time() - t0
            due = int(min(last, math.floor(now / slot) + 1))  # never inf: floor() is finite
            if now - j * slot > CATCH_UP_LIMIT and due - 1 > j:
                log.warning(
                    "%.1f s behind schedule (suspended or overloaded): skipping %d samples",
                    now - j * slot,
                    due - 1 - j,
                )
                self.stats.skipped += due - 1 - j
                j = due - 1
            batch: list[Coroutine[Any, Any, bool]] = []
            while j < due and len(batch) < MAX_BATCH:
                i = j % n
                t = j * slot * o.speed
                values = self.faults.apply(self.ids[i], t, self.models[i].next(t))
                j += 1
                if values is None:
                    continue
                ts_ns = wall0 + round((j - 1) * slot * 1e9)
                link = self._link_of[i]
                for topic, payload in encode_sample(self.ids[i], values, o.style, ts_ns, o.ts_unit):
                    batch.append(link.publish(topic, payload, o.qos))
            if batch:
                sent = await asyncio.gather(*batch)
                self.stats.messages += sum(sent)
            self.stats.samples = j
            self.stats.elapsed = loop.time() - t0
            if j < due:
                await asyncio.sleep(0)
            elif j < last:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), t0 + j * slot - loop.time())

    async def _report(self) -> None:
        interval = self.options.log_interval
        before = 0
        while True:
            await asyncio.sleep(interval)
            s = self.stats
            dropped = sum(link.dropped for link in self.links)
            log.info(
                "published %d samples in the last %g s (%d total, %d messages, %d dropped)",
                s.samples - before,
                interval,
                s.samples,
                s.messages,
                dropped,
            )
            before = s.samples
