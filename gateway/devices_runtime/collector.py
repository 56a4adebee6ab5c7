"""Device and serial-bridge metrics for Prometheus, computed at scrape time.

``outpost_devices{convention,state}``, ``outpost_device_online{device}``,
``outpost_device_last_seen_timestamp_seconds{device}``,
``outpost_serial_port_open{device,port}`` and ``outpost_serial_events_total
{device,event}`` — one series per counter of the bridge (``lines``,
``frames_published``, ``bad_lines``, ``out_of_range:humidity``, …; see
:mod:`gateway.serial.bridge` and :mod:`devices.serial.framing`). Nothing on the hot
path: everything is read from the registry and the bridges when scraped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from devices.presence import NS, DeviceRegistry
from gateway.serial.bridge import SerialBridge


class DevicesCollector(Collector):
    """Prometheus families computed at scrape time from the registry and the bridges."""

    def __init__(
        self, registry: DeviceRegistry, bridges: list[SerialBridge], clock: Callable[[], int]
    ) -> None:
        self._registry = registry
        self._bridges = bridges
        self._clock = clock

    def describe(self) -> list[Metric]:
        return list(self._families(empty=True))

    def collect(self) -> Iterator[Metric]:
        return self._families(empty=False)

    def _families(self, empty: bool) -> Iterator[Metric]:
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
            now = self._clock()
            counts: dict[tuple[str, str], int] = {}
            registry = self._registry
            for info in list(registry.devices.values()):
                up = registry.status(info.device, now).online
                key = (info.convention, "online" if up else "offline")
                counts[key] = counts.get(key, 0) + 1
                online.add_metric([info.device], 1.0 if up else 0.0)
                if info.messages:
                    last_seen.add_metric([info.device], info.last_seen_ns / NS)
            for (convention, state), n in sorted(counts.items()):
                by_state.add_metric([convention, state], n)
            for bridge in self._bridges:
                device = bridge.config.device
                port_open.add_metric(
                    [device, bridge.config.port], 1.0 if bridge.port_open.is_set() else 0.0
                )
                for event, value in sorted(dict(bridge.counters).items()):
                    events.add_metric([device, event], value)
        yield from (by_state, online, last_seen, port_open, events)
