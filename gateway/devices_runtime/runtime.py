"""DevicesRuntime: the device registry, availability topics and serial bridges of one gateway.

**Readings.** :meth:`DevicesRuntime.observe` runs for every reading (tens of
thousands a second), so it is one dict lookup and a few attribute writes into the
registry (:meth:`DeviceRegistry.observe_reading`); the device's convention is
worked out once, when the device is first seen.

**Availability** (:mod:`.availability` for the filters): retained messages arrive
at every subscribe. They are few, so the gateway's ``MqttLink`` (commands, acks) is
their natural connection. On the ingest connection instead,
:meth:`~DevicesRuntime.subscriptions` gives them at QoS 0 (nothing for the
manual-ack client to acknowledge) and :meth:`~DevicesRuntime.intercept` sends them
to :meth:`~DevicesRuntime.on_message` and everything else on to the pipeline; a
message that also matches an input still reaches the pipeline.
:meth:`~DevicesRuntime.on_message` may run on any thread: off the event loop, the
registry update is handed to the loop.

**Convention of a device** (``snapshot()``, ``tags_for()``): its ``devices:``
entry's ``convention`` if listed, else the ``format`` of the input its readings
came through (``zigbee2mqtt``, ``tasmota``, ``json`` …); ``outpost`` for
``serial:`` devices; ``modbus`` for ``modbus:`` devices, whose poller says
online/offline through :meth:`~DevicesRuntime.set_online` (it answers, or not).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from devices.conventions.base import Availability
from devices.model import Reading
from devices.presence import DeviceRegistry
from devices.profiles import get_profile
from gateway.config import LoadedConfig
from gateway.devices_runtime.availability import AvailabilityRoutes
from gateway.devices_runtime.bridges import run_bridges, serial_warnings
from gateway.devices_runtime.collector import FAMILIES, device_samples
from gateway.devices_runtime.snapshot import device_list
from gateway.metrics import Metrics
from gateway.serial.bridge import SerialBridge, bridges_from_config
from gateway.topics import TopicRouter, TopicTemplate

log = logging.getLogger("outpost.devices")

OnMessage = Callable[[str, bytes, Any], None]
MODBUS = "modbus"  # the convention of ``modbus:`` devices


class DevicesRuntime:
    """Devices in the running gateway; see the package docstring for its lifecycle."""

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
        self._modbus = {e.device: f"{e.bus} unit {e.unit_id}" for e in config.modbus}
        # A Modbus device's devices: entry (tags, pacing) leaves its convention as modbus.
        self._configured = {
            name: entry.model_copy(update={"convention": MODBUS}) if name in self._modbus else entry
            for name, entry in config.devices.items()
        }
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
        self._availability = AvailabilityRoutes(loaded)
        self.bridges: list[SerialBridge] = bridges_from_config(config, loaded.resolve)
        self.warnings = serial_warnings(config, self._inputs)
        for warning in self.warnings:
            log.warning("%s", warning)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        with contextlib.suppress(RuntimeError):  # built inside the gateway's event loop
            self._bind(asyncio.get_running_loop())
        metrics.read_at_scrape(
            FAMILIES, lambda: device_samples(self.registry, self.bridges, self._clock())
        )

    @property
    def availability_errors(self) -> int:
        """Availability messages a convention refused (a bad device id, non-UTF-8)."""
        return self._availability.errors

    def availability_filters(self) -> list[str]:
        """The availability topic filters (for ``MqttLink.subscribe(…, self.on_message)``)."""
        return self._availability.filters()

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
        if reading.device in self._modbus:
            return MODBUS
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
        levels = self._availability.levels
        availability = self._availability.router.route
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
        now = self._clock()
        found = self._availability.read(topic, payload, now)
        if found is not None:
            status, convention = found
            self._apply_soon(status, convention, now)

    def observe_availability(self, status: Availability, convention: str) -> None:
        """Online/offline a convention worked out itself (Sparkplug sessions); any thread."""
        self._apply_soon(status, convention, self._clock())

    def set_online(self, device: str, online: bool) -> None:
        """A device the gateway polls itself (Modbus) answers again, or stopped answering."""
        self._apply_soon(Availability(device, online), MODBUS, self._clock())

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

        Devices named under ``devices:``, ``serial:`` or ``modbus:`` appear before they
        are first seen, with ``online: false`` and ``online_reason: "never_seen"``.
        """
        expected = {d: c.convention for d, c in self._configured.items()}
        expected.update({d: "outpost" for d in self._serial_ports})
        expected.update({d: MODBUS for d in self._modbus})
        return device_list(
            self.registry,
            self._clock(),
            expected=expected,
            serial_ports=self._serial_ports,
            modbus=self._modbus,
            profile_units=self._profile_units,
        )

    # --- serial bridges ----------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Run every ``serial:`` bridge until ``stop`` is set; each then says ``offline``."""
        self._bind(asyncio.get_running_loop())
        await run_bridges(self.bridges, stop)
