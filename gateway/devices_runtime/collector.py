"""Device and serial-bridge metrics for Prometheus, read at scrape time.

``outpost_devices{convention,state}``, ``outpost_device_online{device}``,
``outpost_device_last_seen_timestamp_seconds{device}``,
``outpost_serial_port_open{device,port}`` and ``outpost_serial_events_total
{device,event}`` — one series per counter of the bridge (``lines``,
``frames_published``, ``bad_lines``, ``out_of_range:humidity``, …; see
:mod:`gateway.serial.bridge` and :mod:`devices.serial.framing`). Nothing on the hot
path: everything is read from the registry and the bridges when scraped
(:meth:`gateway.metrics.Metrics.read_at_scrape`).
"""

from __future__ import annotations

from collections.abc import Iterator

from devices.presence import NS, DeviceRegistry
from gateway.metrics import Family, Sample
from gateway.serial.bridge import SerialBridge

FAMILIES = (
    Family("outpost_devices", "Devices in the registry, by convention and online state",
           ("convention", "state")),
    Family("outpost_device_online", "1 while a device is online (its LWT/availability, "
           "and reporting within its usual interval)", ("device",)),
    Family("outpost_device_last_seen_timestamp_seconds",
           "When a device last sent a reading (Unix time)", ("device",)),
    Family("outpost_serial_port_open", "1 while a serial bridge has its port open",
           ("device", "port")),
    Family("outpost_serial_events", "Serial bridge counters: lines, frames_published, "
           "bad_lines, port_opens, out_of_range:<metric> …", ("device", "event"), "counter"),
)  # fmt: skip


def device_samples(
    registry: DeviceRegistry, bridges: list[SerialBridge], now: int
) -> Iterator[Sample]:
    """The samples of :data:`FAMILIES` at ``now`` (ns)."""
    counts: dict[tuple[str, str], int] = {}
    for info in list(registry.devices.values()):
        up = registry.status(info.device, now).online
        key = (info.convention, "online" if up else "offline")
        counts[key] = counts.get(key, 0) + 1
        yield "outpost_device_online", (info.device,), 1.0 if up else 0.0
        if info.messages:
            yield (
                "outpost_device_last_seen_timestamp_seconds",
                (info.device,),
                info.last_seen_ns / NS,
            )
    for (convention, state), n in sorted(counts.items()):
        yield "outpost_devices", (convention, state), n
    for bridge in bridges:
        device = bridge.config.device
        port_open = 1.0 if bridge.port_open.is_set() else 0.0
        yield "outpost_serial_port_open", (device, bridge.config.port), port_open
        for event, value in sorted(dict(bridge.counters).items()):
            yield "outpost_serial_events", (device, event), value
