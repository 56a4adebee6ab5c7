"""The device registry: every device seen, how it speaks, when it last spoke, whether it is up.

Pure state with time as an argument (no clock inside), fed by the gateway's
pipeline::

    registry = DeviceRegistry()
    registry.observe(readings, convention="zigbee2mqtt", now_ns=arrival)   # per message
    registry.observe_reading(reading, "zigbee2mqtt", now_ns)              # or per reading
    registry.observe_availability(availability, "zigbee2mqtt", now_ns)    # LWT/availability
    registry.status("lamp", now_ns)       # DeviceStatus(online=…, reason=…)
    registry.snapshot(now_ns)             # for /api/v1/devices and the dashboard
    registry.tags("lamp")                 # {"convention": "zigbee2mqtt"} for rules' tags

**Online** combines two sources. The device's own word (LWT, availability,
Homie ``$state``, a Sparkplug death) wins when it says ``offline``. A device with a
*session* (Sparkplug: online from its birth to its death) reports by exception, so
while its session is up it is online (reason ``session``) however long it is
silent. Otherwise a device is offline when it has been *silent* for longer than
``silence_factor`` times its usual reporting interval (an exponentially weighted
mean of the gaps between its messages), and never sooner than
``min_silence_s``: a sensor that reports every 10 s and has said nothing for a
minute is gone, whatever its retained LWT still claims. A device seen only once
has no interval yet; it is online until ``min_silence_s`` has passed.

The registry is bounded (``max_devices``): when full, the device silent the
longest is forgotten and counted in ``evicted``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from devices.conventions.base import Availability
from devices.model import Reading, Value

NS = 1_000_000_000


@dataclass(slots=True)
class MetricInfo:
    unit: str
    last_value: Value
    last_ts: int


@dataclass(slots=True)
class DeviceInfo:
    device: str
    convention: str
    first_seen_ns: int
    last_seen_ns: int
    said_online: bool | None = None  # from LWT/availability; None: it never said
    said_at_ns: int = 0
    session: bool = False  # said_online comes from a session (births and deaths)
    interval_s: float | None = None
    messages: int = 0
    metrics: dict[str, MetricInfo] = field(default_factory=dict)
    last_ts: int = -1  # reading time of the last message (observe_reading's message boundary)


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    online: bool
    reason: str  # "availability", "session", "silent", "reporting", "never_seen"


class DeviceRegistry:
    def __init__(
        self,
        silence_factor: float = 3.0,
        min_silence_s: float = 60.0,
        max_devices: int = 10_000,
        smoothing: float = 0.2,
    ) -> None:
        self.silence_factor = silence_factor
        self.min_silence_s = min_silence_s
        self.max_devices = max_devices
        self.smoothing = smoothing
        self.devices: dict[str, DeviceInfo] = {}
        self.evicted = 0

    def _entry(self, device: str, convention: str, now_ns: int) -> DeviceInfo:
        info = self.devices.get(device)
        if info is None:
            if len(self.devices) >= self.max_devices:
                oldest = min(self.devices.values(), key=lambda d: d.last_seen_ns)
                del self.devices[oldest.device]
                self.evicted += 1
            info = DeviceInfo(device, convention, now_ns, now_ns)
            self.devices[device] = info
        if convention:
            info.convention = convention
        return info

    def observe(self, readings: Iterable[Reading], convention: str, now_ns: int) -> None:
        """The readings of one message, which arrived at ``now_ns``."""
        touched: set[str] = set()
        for reading in readings:
            info = self._entry(reading.device, convention, now_ns)
            if reading.device not in touched:
                touched.add(reading.device)
                if info.messages:
                    gap = max(0.0, (now_ns - info.last_seen_ns) / NS)
                    info.interval_s = (
                        gap
                        if info.interval_s is None
                        else info.interval_s + self.smoothing * (gap - info.interval_s)
                    )
                info.messages += 1
                info.last_seen_ns = now_ns
            info.metrics[reading.metric] = MetricInfo(reading.unit, reading.value, reading.ts)

    def observe_reading(self, reading: Reading, convention: str, now_ns: int) -> None:
        """One reading, arrived at ``now_ns``: :meth:`observe` for a caller that sees readings
        one by one (the gateway's pipeline observers), at a fraction of its cost.

        The readings of one message share their ``ts`` (every decoder stamps a message
        once), so a reading whose ``ts`` differs from its device's previous one starts a
        new message for the reporting interval. ``convention`` only names a new device.
        """
        info = self.devices.get(reading.device)
        if info is None:
            info = self._entry(reading.device, convention, now_ns)
        if reading.ts != info.last_ts:
            info.last_ts = reading.ts
            if info.messages:
                gap = (now_ns - info.last_seen_ns) / NS
                if gap < 0.0:
                    gap = 0.0
                interval = info.interval_s
                info.interval_s = (
                    gap if interval is None else interval + self.smoothing * (gap - interval)
                )
            info.messages += 1
            info.last_seen_ns = now_ns
        metric = info.metrics.get(reading.metric)
        if metric is None:
            info.metrics[reading.metric] = MetricInfo(reading.unit, reading.value, reading.ts)
        else:
            if reading.unit:
                metric.unit = reading.unit
            metric.last_value = reading.value
            metric.last_ts = reading.ts

    def observe_availability(self, status: Availability, convention: str, now_ns: int) -> None:
        info = self._entry(status.device, convention, now_ns)
        info.said_online = status.online
        info.said_at_ns = now_ns
        info.session = status.session

    def status(self, device: str, now_ns: int) -> DeviceStatus:
        info = self.devices.get(device)
        if info is None:
            return DeviceStatus(False, "never_seen")
        if info.said_online is False and info.said_at_ns >= info.last_seen_ns:
            return DeviceStatus(False, "availability")
        if info.session:
            up = bool(info.said_online)
            return DeviceStatus(up, "session" if up else "availability")
        if info.messages == 0:  # only availability so far
            return DeviceStatus(bool(info.said_online), "availability")
        allowed = self.min_silence_s
        if info.interval_s is not None:
            allowed = max(allowed, self.silence_factor * info.interval_s)
        if (now_ns - info.last_seen_ns) / NS > allowed:
            return DeviceStatus(False, "silent")
        return DeviceStatus(True, "reporting")

    def silent(self, now_ns: int) -> list[str]:
        """Devices that stopped reporting (for an ``offline`` alert or the dashboard)."""
        return sorted(d for d in self.devices if self.status(d, now_ns).reason == "silent")

    def tags(self, device: str) -> dict[str, str]:
        info = self.devices.get(device)
        return {"convention": info.convention} if info and info.convention else {}

    def snapshot(self, now_ns: int) -> list[dict[str, object]]:
        out = []
        for device in sorted(self.devices):
            info = self.devices[device]
            status = self.status(device, now_ns)
            out.append(
                {
                    "device": device,
                    "convention": info.convention,
                    "online": status.online,
                    "online_reason": status.reason,
                    "first_seen_ns": info.first_seen_ns,
                    "last_seen_ns": info.last_seen_ns,
                    "interval_s": info.interval_s,
                    "metrics": {
                        name: {"unit": m.unit, "value": m.last_value, "ts": m.last_ts}
                        for name, m in sorted(info.metrics.items())
                    },
                }
            )
        return out
