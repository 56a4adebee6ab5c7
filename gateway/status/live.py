"""Live state for the dashboard: latest reading and last-hour sparkline per series.

A pipeline observer (:meth:`LiveState.observe`) sees every reading on the event
loop — 20,000 a second on a busy gateway — so it does O(1) work and allocates
nothing once a series exists: one dict lookup, a few attribute writes, and
downsampling on write into a fixed ring of ``points`` buckets of ``bucket``
seconds each (default 360 × 10 s = the last hour). A bucket holds the mean of
the numeric readings that fell into it (booleans count as 0/1; text has no
sparkline).

Bounds and drop policy: at most ``max_series`` (device, metric) series are
kept; readings of further series are not shown and are counted in
:attr:`LiveState.refused` (exported as ``outpost_live_series_refused_total``).
Series and devices are never evicted while the gateway runs: the cap is what
bounds memory (≈ 6 KiB per series with its ring).

Time: buckets follow the *arrival* time (the clock passed in), not the
reading's own timestamp, so a device with a wrong clock still draws a sensible
line and "last seen" means "last heard from".

Change tracking for the event stream: :meth:`mark` starts a new epoch; a series
or device touched since then carries that epoch, so :meth:`changed_since`
finds what to push without the hot path keeping a set.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from devices.model import Reading

NS = 1_000_000_000

__all__ = ["LiveState", "SeriesView"]


class _Series:
    __slots__ = ("device", "epoch", "metric", "n", "ring_b", "ring_v", "slot_b", "sum", "ts",
                 "unit", "value")

    def __init__(self, device: str, metric: str, points: int) -> None:
        self.device = device
        self.metric = metric
        self.value: float | bool | str | None = None
        self.ts = 0  # the reading's own time (ns)
        self.unit = ""
        self.epoch = 0
        self.slot_b = -1  # bucket number being accumulated
        self.sum = 0.0
        self.n = 0
        self.ring_b = [-1] * points  # bucket number held in each slot (-1: empty)
        self.ring_v = [0.0] * points


SeriesView = dict[str, Any]


class LiveState:
    def __init__(self, *, bucket: float = 10.0, points: int = 360, max_series: int = 5000,
                 clock: Callable[[], int] = time.time_ns) -> None:
        self.bucket_ns = int(bucket * NS)
        self.points = points
        self.max_series = max_series
        self._clock = clock
        self._series: dict[str, dict[str, _Series]] = {}
        self._count = 0
        self.devices: dict[str, list[int]] = {}  # device -> [last seen ns, epoch, readings]
        self.epoch = 1
        self.refused = 0
        self.observed = 0

    # hot path ----------------------------------------------------------------------

    def observe(self, reading: Reading) -> None:
        """Pipeline observer: one reading (event loop)."""
        now = self._clock()
        device = reading.device
        metrics = self._series.get(device)
        seen = self.devices.get(device)
        if seen is None:
            self.devices[device] = seen = [now, self.epoch, 0]
            metrics = self._series[device] = {}
        else:
            seen[0] = now
            seen[1] = self.epoch
        seen[2] += 1
        s = metrics.get(reading.metric)  # type: ignore[union-attr]
        if s is None:
            s = self._new(device, reading.metric)
            if s is None:
                return
        value = reading.value
        s.value = value
        s.ts = reading.ts
        s.unit = reading.unit
        s.epoch = self.epoch
        if value.__class__ is str:
            return
        b = now // self.bucket_ns
        if b == s.slot_b:
            s.sum += value  # type: ignore[operator]
            s.n += 1
            return
        if s.n:  # close the previous bucket into the ring
            i = s.slot_b % self.points
            s.ring_b[i] = s.slot_b
            s.ring_v[i] = s.sum / s.n
        s.slot_b = b
        s.sum = float(value)
        s.n = 1

    def _new(self, device: str, metric: str) -> _Series | None:
        if self._count >= self.max_series:
            self.refused += 1
            return None
        self._count += 1
        s = self._series[device][metric] = _Series(device, metric, self.points)
        return s

    # views (API, stream) ---------------------------------------------------------

    @property
    def series_count(self) -> int:
        return self._count

    def mark(self) -> int:
        """Start a new change epoch; returns the one that just ended."""
        self.epoch += 1
        return self.epoch - 1

    def _all(self) -> list[_Series]:
        return [s for metrics in list(self._series.values()) for s in list(metrics.values())]

    def get(self, device: str, metric: str) -> _Series | None:
        return self._series.get(device, {}).get(metric)

    def sparkline(self, s: _Series, now: int | None = None) -> list[list[float]]:
        """``[[bucket start (Unix s), mean], …]`` of the last ``points`` buckets, oldest first."""
        current = (self._clock() if now is None else now) // self.bucket_ns
        oldest = current - self.points + 1
        out = []
        for b, v in zip(s.ring_b, s.ring_v, strict=True):
            if oldest <= b and b != s.slot_b:
                out.append((b, v))
        if s.n and s.slot_b >= oldest:
            out.append((s.slot_b, s.sum / s.n))
        out.sort()
        step = self.bucket_ns / NS
        return [[b * step, round(v, 6)] for b, v in out]

    def reading(self, s: _Series, spark: bool = False) -> SeriesView:
        view: SeriesView = {"device": s.device, "metric": s.metric, "value": s.value,
                            "unit": s.unit, "ts": s.ts}
        if spark:
            view["spark"] = self.sparkline(s)
        return view

    def last_point(self, s: _Series) -> list[float] | None:
        if not s.n:
            return None
        return [s.slot_b * self.bucket_ns / NS, round(s.sum / s.n, 6)]

    def readings(self, device: str | None = None, spark: bool = False) -> list[SeriesView]:
        items = [s for s in self._all() if device is None or s.device == device]
        items.sort(key=lambda s: (s.device, s.metric))
        return [self.reading(s, spark) for s in items]

    def changed_since(self, epoch: int) -> list[_Series]:
        """Series touched in epochs ≥ ``epoch`` (see :meth:`mark`)."""
        return [s for s in self._all() if s.epoch >= epoch]

    def devices_seen(self, offline_after: float = 300.0) -> list[dict[str, Any]]:
        """A minimal device list (when no device registry is wired): seen recently = online."""
        now = self._clock()
        out = []
        for device, (last, _epoch, count) in sorted(list(self.devices.items())):
            out.append({"device": device, "online": now - last <= offline_after * NS,
                        "online_reason": "recent_reading" if now - last <= offline_after * NS
                        else "silent", "last_seen_ns": last, "readings": count,
                        "metrics": sorted(self._series.get(device, {}))})
        return out
