"""Devices in the running gateway: the registry, availability topics, serial bridges, metrics.

One :class:`DevicesRuntime` per gateway, built from the loaded config before
anything connects (a bad ``serial:`` entry or TLS file fails the start).
Lifecycle::

    devices = DevicesRuntime(loaded, metrics)          # registry, conventions, bridges
    pipeline.add_observer(devices.observe)             # every reading, on the event loop
    link.subscribe(devices.availability_filters(), devices.on_message)   # LWT/availability
    task = asyncio.create_task(devices.run(stop))      # serial bridges until ``stop`` is set
    devices.snapshot()                                 # /api/v1/devices, the dashboard

(Without the gateway's low-volume ``MqttLink``, the ingest client can carry
availability too: ``MqttIngest(cfg.mqtt, subs + devices.subscriptions(),
devices.intercept(pipeline.on_message), …)``.)

**Readings.** :meth:`observe` runs for every reading (tens of thousands a
second), so it is one dict lookup and a few attribute writes into the
registry (:meth:`DeviceRegistry.observe_reading`); the device's convention is
worked out once, when the device is first seen.

**Availability.** Each convention in use — an input's ``format:``, a
``devices:`` entry's ``convention:``, ``outpost`` for ``serial:`` bridges and
for inputs under ``sensors/`` — adds its LWT/availability filters
(``zigbee2mqtt/+/availability``, ``tele/+/LWT``, ``devices/+/status`` …) at
:meth:`availability_filters`; retained messages arrive at every subscribe.
They are few, so the gateway's ``MqttLink`` (commands, acks) is their natural
connection. On the ingest connection instead, :meth:`subscriptions` gives them
at QoS 0 (nothing for the manual-ack client to acknowledge) and
:meth:`intercept` sends them to :meth:`on_message` and everything else on to
the pipeline; a message that also matches an input still reaches the pipeline.
:meth:`on_message` may run on any thread: off the event loop, the registry
update is handed to the loop.

**Convention of a device** (``snapshot()``, ``tags_for()``): its ``devices:``
entry's ``convention`` if listed, else the ``format`` of the input its readings
came through (``zigbee2mqtt``, ``tasmota``, ``json`` …); ``outpost`` for
``serial:`` devices.

**Metrics** (read at scrape time, nothing on the hot path): ``outpost_devices
{convention,state}``, ``outpost_device_online{device}``,
``outpost_device_last_seen_timestamp_seconds{device}``,
``outpost_serial_port_open{device,port}`` and ``outpost_serial_events_total
{device,event}`` — one series per counter of the bridge (``lines``,
``frames_published``, ``bad_lines``, ``out_of_range:humidity``, …; see
:mod:`gateway.serial.bridge` and :mod:`devices.serial.framing`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

import devices.conventions as conventions
from devices.conventions.base import Availability, Convention
from devices.decoding import Message
from devices.model import InvalidReading, Reading
from devices.presence import NS, DeviceRegistry
from devices.profiles import get_profile
from gateway.config import LoadedConfig
from gateway.metrics import Metrics
from gateway.serial.bridge import SerialBridge, bridges_from_config
from gateway.topics import TopicRouter, TopicTemplate

log = logging.getLogger("outpost.devices")

__all__ = ["DevicesRuntime", "rfc3339_ms"]

OnMessage = Callable[[str, bytes, Any], None]

# Formats whose inputs carry the readings the serial bridge publishes on sensors/{device}.
_SENSOR_FORMATS = ("json", "outpost")
BRIDGE_STOP_TIMEOUT = 10.0  # seconds for every bridge to say offline and close its port
BRIDGE_RESTART_DELAY = 2.0  # seconds before a bridge that crashed is started again


def rfc3339_ms(ns: int) -> str:
    """``2026-11-27T10:00:00.123Z`` (DESIGN.md §5: times in JSON carry milliseconds)."""
    moment = datetime.fromtimestamp(ns // 1_000_000 / 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class DevicesRuntime:
    def __init__(
        self,
        loaded: LoadedConfig,
        metrics: Metrics,
        *,
        registry: DeviceRegistry | None = None,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        config = loaded.config
        self.registry = registry or DeviceRegistry()
        self._clock = clock
        self._configured = dict(config.devices)
        # Hot path: bound once (observe() runs per reading).
        self._devices = self.registry.devices
        self._observe_reading = self.registry.observe_reading
        self._inputs: TopicRouter[str] = TopicRouter(
            [(TopicTemplate(spec.topic), spec.format) for spec in config.inputs]
        )
        self._serial_ports = {entry.device: entry.port for entry in config.serial}
        self._profile_units: dict[str, dict[str, str]] = {}
        for entry in config.serial:
            if entry.profile:
                fields = get_profile(entry.profile).fields
                self._profile_units[entry.device] = {f.metric: f.unit for f in fields}
        self._availability = self._availability_routes(loaded)
        self._availability_levels = {f.rsplit("/", 1)[-1] for f, _ in self._availability}
        self._availability_router: TopicRouter[list[Convention]] = TopicRouter(
            self._group_by_filter(), cache_size=10_000
        )
        self.bridges: list[SerialBridge] = bridges_from_config(config, loaded.resolve)
        self.availability_errors = 0
        self.warnings = self._check(config)
        for warning in self.warnings:
            log.warning("%s", warning)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        with contextlib.suppress(RuntimeError):  # built inside the gateway's event loop
            self._bind(asyncio.get_running_loop())
        metrics.registry.register(_DevicesCollector(self))

    # --- configuration -------------------------------------------------------------------

    def _availability_routes(self, loaded: LoadedConfig) -> list[tuple[str, Convention]]:
        """(filter, convention) for every availability topic of the conventions in use."""
        config = loaded.config
        known = set(conventions.names())
        used: list[Convention] = []
        with_input: set[str] = set()
        for spec in config.inputs:
            if spec.format in known:
                used.append(conventions.create(spec.format, spec.model_dump()))
                with_input.add(spec.format)
        wanted = {d.convention for d in config.devices.values()}
        if config.serial or any(
            s.format not in known and s.topic.startswith("sensors/") for s in config.inputs
        ):
            wanted.add("outpost")  # bridges and simulators announce devices/{id}/status
        for name in sorted(wanted - with_input):
            if name in known:  # an unknown one is the config check's to report
                used.append(conventions.create(name))
        routes: list[tuple[str, Convention]] = []
        seen: set[tuple[str, str]] = set()
        for convention in used:
            for topic_filter in convention.availability_subscriptions():
                if (topic_filter, convention.name) not in seen:
                    seen.add((topic_filter, convention.name))
                    routes.append((topic_filter, convention))
        return routes

    def _group_by_filter(self) -> list[tuple[TopicTemplate, list[Convention]]]:
        groups: dict[str, list[Convention]] = {}
        for topic_filter, convention in self._availability:
            groups.setdefault(topic_filter, []).append(convention)
        return [(TopicTemplate(f), convs) for f, convs in groups.items()]

    def _check(self, config: Any) -> list[str]:
        warnings = []
        for entry in config.serial:
            topic = f"sensors/{entry.device}"
            route = self._inputs.route(topic)
            if route is None or route[0] not in _SENSOR_FORMATS:
                warnings.append(
                    f"serial device {entry.device}: its readings arrive on {topic}, which no "
                    f"input with format json reads; add "
                    f'{{topic: "sensors/{{device}}", format: json, time_field: ts}} to inputs:'
                )
        return warnings

    def availability_filters(self) -> list[str]:
        """The availability topic filters (for ``MqttLink.subscribe(…, self.on_message)``)."""
        return list(dict.fromkeys(f for f, _ in self._availability))

    def subscriptions(self) -> list[tuple[str, int]]:
        """The same as (filter, QoS 0) pairs, for the ingest client with :meth:`intercept`."""
        return [(f, 0) for f in self.availability_filters()]

    # --- readings (event loop, per reading) -------------------------------------------------

    def observe(self, reading: Reading) -> None:
        """Pipeline observer: last seen, reporting interval, metric values and units."""
        if reading.device in self._devices:
            self._observe_reading(reading, "", self._clock())
        else:
            self._observe_reading(reading, self.convention_of(reading), self._clock())

    def convention_of(self, reading: Reading) -> str:
        configured = self._configured.get(reading.device)
        if configured is not None:
            return configured.convention
        if reading.device in self._serial_ports:
            return "outpost"
        route = self._inputs.route(reading.topic) if reading.topic else None
        return route[0] if route is not None else ""

    # --- availability (any thread, low volume) ------------------------------------------------

    def intercept(self, on_message: OnMessage) -> OnMessage:
        """Wrap the pipeline's ``on_message``: availability topics come here first.

        A message on an availability filter goes to :meth:`on_message`; it also goes
        on to the pipeline when it carries an acknowledgement token (it came through
        a QoS 1 input) or matches an input template, so nothing an input asked for is
        lost and nothing the pipeline does not know is dead-lettered as ``no_input``.
        """
        levels = self._availability_levels
        availability = self._availability_router.route
        inputs = self._inputs.route

        def route(topic: str, payload: bytes, token: Any) -> None:
            # The last level decides cheaply for the 20k readings/s that are not ours.
            if topic[topic.rfind("/") + 1 :] in levels and availability(topic) is not None:
                self.on_message(topic, payload)
                if token is None and inputs(topic) is None:
                    return
            on_message(topic, payload, token)

        return route

    def on_message(self, topic: str, payload: bytes) -> None:
        """An LWT/availability message: online/offline into the registry."""
        route = self._availability_router.route(topic)
        if route is None:
            return
        now = self._clock()
        message = Message(topic, payload, {}, now)
        for convention in route[0]:
            try:
                status = convention.availability(message)
            except InvalidReading as exc:  # a bad device id, a non-UTF-8 payload
                self.availability_errors += 1
                log.debug("availability %s: %s", topic[:120], exc)
                continue
            if status is not None:
                self._apply_soon(status, convention.name, now)
                return

    def _apply_soon(self, status: Availability, convention: str, now: int) -> None:
        loop = self._loop
        if loop is None or threading.get_ident() == self._loop_thread:
            self._apply(status, convention, now)
            return
        with contextlib.suppress(RuntimeError):  # loop closed during shutdown
            loop.call_soon_threadsafe(self._apply, status, convention, now)

    def _apply(self, status: Availability, convention: str, now: int) -> None:
        configured = self._configured.get(status.device)
        self.registry.observe_availability(
            status, configured.convention if configured else convention, now
        )

    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._loop_thread = threading.get_ident()

    # --- views -------------------------------------------------------------------------------

    def tags_for(self, device: str) -> dict[str, str]:
        """Tags a rule may match on: the ``devices:`` entry's ``tags`` and the convention."""
        tags = dict(self.registry.tags(device))
        configured = self._configured.get(device)
        if configured is not None:
            tags["convention"] = configured.convention
            tags.update(configured.tags)
        return tags

    def snapshot(self) -> list[dict[str, Any]]:
        """JSON-ready device list for ``/api/v1/devices`` and the dashboard, sorted by id.

        Devices named under ``devices:`` or ``serial:`` appear before they are first
        seen, with ``online: false`` and ``online_reason: "never_seen"``.
        """
        now = self._clock()
        registry = self.registry
        out: dict[str, dict[str, Any]] = {}
        for info in list(registry.devices.values()):
            status = registry.status(info.device, now)
            units = self._profile_units.get(info.device, {})
            out[info.device] = {
                "device": info.device,
                "convention": info.convention,
                "online": status.online,
                "online_reason": status.reason,
                "last_seen": rfc3339_ms(info.last_seen_ns) if info.messages else None,
                "first_seen": rfc3339_ms(info.first_seen_ns),
                "reporting_interval_s": (
                    round(info.interval_s, 3) if info.interval_s is not None else None
                ),
                "metrics": {
                    name: {
                        "value": m.last_value,
                        "unit": m.unit or units.get(name, ""),
                        "ts": rfc3339_ms(m.last_ts),
                    }
                    for name, m in sorted(list(info.metrics.items()))
                },
            }
        expected = {d: c.convention for d, c in self._configured.items()}
        expected.update({d: "outpost" for d in self._serial_ports})
        for device, convention in expected.items():
            if device not in out:
                out[device] = {
                    "device": device, "convention": convention, "online": False,
                    "online_reason": "never_seen", "last_seen": None, "first_seen": None,
                    "reporting_interval_s": None, "metrics": {},
                }  # fmt: skip
        for device, port in self._serial_ports.items():
            out[device]["serial_port"] = port
        return [out[d] for d in sorted(out)]

    # --- serial bridges ----------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Run every ``serial:`` bridge until ``stop`` is set; each then says ``offline``."""
        self._bind(asyncio.get_running_loop())
        if not self.bridges:
            await stop.wait()
            return
        tasks = [
            asyncio.create_task(self._supervise(b), name=f"serial-{b.config.device}")
            for b in self.bridges
        ]
        log.info(
            "serial bridges: %s",
            ", ".join(f"{b.config.port} → {b.config.device}" for b in self.bridges),
        )
        try:
            await stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            _, pending = await asyncio.wait(tasks, timeout=BRIDGE_STOP_TIMEOUT)
            if pending:
                log.warning(
                    "%d serial bridges did not stop within %ss", len(pending), BRIDGE_STOP_TIMEOUT
                )

    async def _supervise(self, bridge: SerialBridge) -> None:
        # A bridge survives unplugs and broker restarts itself; this only catches a bug,
        # so that one misbehaving sensor cannot take the gateway down.
        while True:
            try:
                await bridge.run()
            except asyncio.CancelledError:
                raise
            except Exception:
                bridge.counters["crashes"] += 1
                log.exception("serial bridge %s crashed; restarting", bridge.config.device)
            await asyncio.sleep(BRIDGE_RESTART_DELAY)


class _DevicesCollector(Collector):
    """Prometheus families computed at scrape time from the registry and the bridges."""

    def __init__(self, runtime: DevicesRuntime) -> None:
        self._runtime = runtime

    def describe(self) -> list[Metric]:
        return list(self._families(empty=True))

    def collect(self) -> Iterator[Metric]:
        return self._families(empty=False)

    def _families(self, empty: bool) -> Iterator[Metric]:
        rt = self._runtime
        by_state = GaugeMetricFamily(
            "outpost_devices", "Devices in the registry, by convention and online state",
            labels=["convention", "state"])  # fmt: skip
        online = GaugeMetricFamily(
            "outpost_device_online", "1 while a device is online (its LWT/availability, "
            "and reporting within its usual interval)", labels=["device"])  # fmt: skip
        last_seen = GaugeMetricFamily(
            "outpost_device_last_seen_timestamp_seconds",
            "When a device last sent a reading (Unix time)", labels=["device"])  # fmt: skip
        port_open = GaugeMetricFamily(
            "outpost_serial_port_open", "1 while a serial bridge has its port open",
            labels=["device", "port"])  # fmt: skip
        events = CounterMetricFamily(
            "outpost_serial_events",
            "Serial bridge counters: lines, frames_published, "
            "bad_lines, port_opens, out_of_range:<metric> …",
            labels=["device", "event"],
        )
        if not empty:
            now = rt._clock()
            counts: dict[tuple[str, str], int] = {}
            registry = rt.registry
            for info in list(registry.devices.values()):
                up = registry.status(info.device, now).online
                key = (info.convention, "online" if up else "offline")
                counts[key] = counts.get(key, 0) + 1
                online.add_metric([info.device], 1.0 if up else 0.0)
                if info.messages:
                    last_seen.add_metric([info.device], info.last_seen_ns / NS)
            for (convention, state), n in sorted(counts.items()):
                by_state.add_metric([convention, state], n)
            for bridge in rt.bridges:
                device = bridge.config.device
                port_open.add_metric(
                    [device, bridge.config.port], 1.0 if bridge.port_open.is_set() else 0.0
                )
                for event, value in sorted(dict(bridge.counters).items()):
                    events.add_metric([device, event], value)
        yield from (by_state, online, last_seen, port_open, events)
