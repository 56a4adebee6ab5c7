"""Write less: skip readings that say nothing new (per input ``deadband``/``heartbeat``).

With ``deadband: d`` a number within ±d of the last *written* value of the same
(device, metric) is not written to InfluxDB; a boolean or string equal to the
last written one is not written either. ``heartbeat: T`` writes a reading
anyway when the last written one is T old, so a flat line still shows the
sensor is alive. Skipped readings still reach the rules and live views —
only InfluxDB sees fewer — and are counted
(``outpost_readings_skipped_total{reason="deadband"}``).

Memory: one (value, time) per series, at most ``MAX_SERIES`` series; beyond
that the table is cleared (the next reading of each series is then written).
"""

from __future__ import annotations

from devices.model import Reading

MAX_SERIES = 100_000


class Deadband:
    __slots__ = ("_band", "_heartbeat_ns", "_last")

    def __init__(self, band: float | None, heartbeat: float | None) -> None:
        self._band = band
        self._heartbeat_ns = None if heartbeat is None else int(heartbeat * 1e9)
        self._last: dict[tuple[str, str], tuple[float | bool | str, int]] = {}

    def keep(self, reading: Reading) -> bool:
        """True if the reading should be written (and remember it as the last written)."""
        key = (reading.device, reading.metric)
        last = self._last.get(key)
        value, ts = reading.value, reading.ts
        if last is not None:
            old, old_ts = last
            fresh = self._heartbeat_ns is None or ts - old_ts < self._heartbeat_ns
            if fresh and self._same(old, value):
                return False
        if len(self._last) >= MAX_SERIES:
            self._last.clear()
        self._last[key] = (value, ts)
        return True

    def _same(self, old: float | bool | str, new: float | bool | str) -> bool:
        if isinstance(new, float) and isinstance(old, float):
            return self._band is not None and abs(new - old) <= self._band
        return old == new and type(old) is type(new) and self._band is not None
