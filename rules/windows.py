"""Sliding time windows per (device, metric), updated incrementally.

A :class:`Window` of span D evaluated at time t holds the points with
``t − D < ts ≤ t`` (DESIGN §6). The windows of one series share one
:class:`Points` store (two parallel lists, timestamps and values): a window is
a cursor into it — its points are always a suffix of the store — plus running
sums (``count``, ``sum``, shifted sum of squares for ``stddev``), so expiring a
point from a span is an index move and a subtraction, and adding a point and
answering any function costs O(1) amortised, however many rules read it.
``min``/``max`` keep two monotonic deques of indices, built the first time a
window is asked for them (most windows never are) and maintained from then on.

The store and its memory bound are in :mod:`rules.points`.

Values: numbers as they are, booleans as 1.0/0.0 (``avg(door_open, 1h)`` is the
fraction of time-samples the door was open); strings never enter a window.

Numerics: running sums drift when points are subtracted, so sums are taken
relative to a reference value (the first point since the window was last
empty — the "shifted data" variance algorithm) and recomputed exactly from the
points every ``_RECOMPUTE_EVERY`` removals, whenever the window empties, and
when ``stddev`` sees that the reference has drifted far from the data.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque
from collections.abc import Iterable, Mapping
from math import sqrt
from typing import Any

from rules.points import _COMPACT_AT, DEFAULT_MAX_POINTS, Point, Points

__all__ = ["DEFAULT_MAX_POINTS", "Point", "Points", "Series", "Window"]

_RECOMPUTE_EVERY = 4096
# The min/max deque of a window nobody asked min/max of: always empty, never
# appended to (most windows never need one, and 20,000 series × spans of empty
# deques would only give the garbage collector more to walk).
_UNTRACKED: deque[int] = deque(maxlen=0)


class Window:
    """The points of a :class:`Points` store within the last ``span`` ns, with O(1) aggregates.

    ``Window(span)`` alone owns a private store (``add`` feeds it); a
    :class:`Series` creates its windows over its shared store instead.
    """

    __slots__ = (
        "at",
        "big",
        "maxs",
        "mins",
        "n",
        "ref",
        "removals",
        "s1",
        "s2",
        "span",
        "start",
        "store",
        "summing",
        "track_max",
        "track_min",
    )

    def __init__(
        self, span: int, max_points: int = DEFAULT_MAX_POINTS, store: Points | None = None
    ) -> None:
        self.span = span
        self.store = store if store is not None else Points(max_points)
        self.start = len(self.store.ts)  # index of the first point in the window
        self.n = 0
        self.at = -(2**63)  # expired up to this time
        self.ref = 0.0
        self.s1 = 0.0  # sum of (v - ref)
        self.s2 = 0.0  # sum of (v - ref)^2
        self.big = 0.0  # largest (v - ref)^2 added since the last exact recompute
        self.removals = 0
        # The sums are kept only once ``summing`` (the first avg, sum or stddev).
        self.summing = False
        # Indices of increasing values (front: the minimum) and of decreasing ones
        # (front: the maximum), each kept only from the first min() / max() on.
        self.track_min = self.track_max = False
        self.mins: deque[int] = _UNTRACKED  # replaced by start_min()
        self.maxs: deque[int] = _UNTRACKED
        if store is None and span > 0:
            self.store.windows.append(self)

    @property
    def points(self) -> list[Point]:
        i, n = self.start, self.n
        return list(zip(self.store.ts[i : i + n], self.store.values[i : i + n], strict=True))

    @property
    def dropped(self) -> int:
        return self.store.dropped

    def add(self, ts: int, value: float) -> None:
        """Append a point to the store (``ts`` never decreases)."""
        self.store.add(ts, value)

    def expire(self, now: int) -> None:
        """Drop points with ``ts <= now - span`` (from every window of the store)."""
        if now > self.at:
            if self.span > 0:
                self.store.expire(now)
            else:
                self.at = now  # a window of span 0 never holds a point

    def drop_until(self, cutoff: int) -> None:
        """Drop points with ``ts <= cutoff``."""
        tsl = self.store.ts
        i = self.start
        end = i + self.n
        while i < end and tsl[i] <= cutoff:
            i += 1
        if i > self.start:
            self.drop_to(i)

    def drop_first(self) -> None:
        """Drop the oldest point (there is one): :meth:`drop_to` for one point, cheaper."""
        i = self.start
        self.start = i + 1
        if self.track_min and self.mins[0] == i:
            self.mins.popleft()
        if self.track_max and self.maxs[0] == i:
            self.maxs.popleft()
        n = self.n = self.n - 1
        if n == 0:
            self.s1 = self.s2 = self.big = 0.0
            self.removals = 0
        elif self.summing:
            d = self.store.values[i] - self.ref
            self.s1 -= d
            self.s2 -= d * d
            self.removals += 1
            if self.removals >= _RECOMPUTE_EVERY:
                self.recompute()

    def drop_to(self, stop: int) -> None:
        """Drop the points before index ``stop`` (which is in the window, or its end)."""
        first = self.start
        self.start = stop
        mins, maxs = self.mins, self.maxs
        while mins and mins[0] < stop:
            mins.popleft()
        while maxs and maxs[0] < stop:
            maxs.popleft()
        self.n -= stop - first
        if self.n == 0:
            self.s1 = self.s2 = self.big = 0.0
            self.removals = 0
            return
        if self.summing:
            vals = self.store.values
            ref, s1, s2 = self.ref, self.s1, self.s2
            for k in range(first, stop):
                d = vals[k] - ref
                s1 -= d
                s2 -= d * d
            self.s1, self.s2 = s1, s2
            self.removals += stop - first
            if self.removals >= _RECOMPUTE_EVERY:
                self.recompute()

    def start_summing(self) -> None:
        """Compute the sums from the points and keep them from now on."""
        self.summing = True
        self.recompute()

    def recompute(self) -> None:
        self.removals = 0
        vals = self.store.values
        i = self.start
        ref = self.ref = vals[i] if self.n else 0.0
        s1 = s2 = big = 0.0
        for k in range(i, i + self.n):
            d = vals[k] - ref
            dd = d * d
            s1 += d
            s2 += dd
            if dd > big:
                big = dd
        self.s1, self.s2, self.big = s1, s2, big

    def start_min(self) -> None:
        """Build the min deque from the points and keep it from now on."""
        self.track_min = True
        vals, mins = self.store.values, deque[int]()
        self.mins = mins
        for k in range(self.start, self.start + self.n):
            while mins and vals[mins[-1]] >= vals[k]:
                mins.pop()
            mins.append(k)

    def start_max(self) -> None:
        """Build the max deque from the points and keep it from now on."""
        self.track_max = True
        vals, maxs = self.store.values, deque[int]()
        self.maxs = maxs
        for k in range(self.start, self.start + self.n):
            while maxs and vals[maxs[-1]] <= vals[k]:
                maxs.pop()
            maxs.append(k)

    # Aggregates at time ``now``; ``None`` means undefined (DESIGN §6).

    def count(self, now: int) -> float:
        if now > self.at:
            self.expire(now)
        return float(self.n)

    def sum(self, now: int) -> float:
        if now > self.at:
            self.expire(now)
        if not self.summing:
            self.start_summing()
        n = self.n
        return self.s1 + n * self.ref if n else 0.0

    def avg(self, now: int) -> float | None:
        if now > self.at:
            self.expire(now)
        if not self.summing:
            self.start_summing()
        n = self.n
        return self.ref + self.s1 / n if n else None

    def min(self, now: int) -> float | None:
        if now > self.at:
            self.expire(now)
        if not self.n:
            return None
        if not self.track_min:
            self.start_min()
        return self.store.values[self.mins[0]]

    def max(self, now: int) -> float | None:
        if now > self.at:
            self.expire(now)
        if not self.n:
            return None
        if not self.track_max:
            self.start_max()
        return self.store.values[self.maxs[0]]

    def last(self, now: int) -> float | None:
        if now > self.at:
            self.expire(now)
        return self.store.values[-1] if self.n else None

    def delta(self, now: int) -> float | None:
        if now > self.at:
            self.expire(now)
        if self.n < 2:
            return None
        vals = self.store.values
        return vals[-1] - vals[self.start]

    def rate(self, now: int) -> float | None:
        """(last − first) / (t_last − t_first), per second."""
        if now > self.at:
            self.expire(now)
        if self.n < 2:
            return None
        tsl, vals, i = self.store.ts, self.store.values, self.start
        t0, t1 = tsl[i], tsl[-1]
        if t1 == t0:
            return None
        return (vals[-1] - vals[i]) * 1e9 / (t1 - t0)

    def stddev(self, now: int) -> float | None:
        """Population standard deviation."""
        if now > self.at:
            self.expire(now)
        if not self.summing:
            self.start_summing()
        n = self.n
        if not n:
            return None
        mean = self.s1 / n
        var = self.s2 / n - mean * mean
        if mean * mean > 4 * n * var or var < self.big * 1e-9:
            # Cancellation: either the reference drifted far from the data (its
            # point expired) or a huge value came and went, so the subtraction lost
            # the digits that matter. Right after an exact recompute (reference
            # taken from the data) mean² <= n·var and var >= big/(2n), so neither
            # test can fire again until the data changes that way again.
            self.recompute()
            mean = self.s1 / n
            var = self.s2 / n - mean * mean
        return sqrt(var) if var > 0.0 else 0.0


class Series:
    """The latest reading of one (device, metric), its points and windows (by span in ns)."""

    __slots__ = (
        "device",
        "metric",
        "plan",
        "store",
        "tags",
        "topic",
        "trace_id",
        "ts",
        "value",
        "windows",
    )

    def __init__(self, device: str, metric: str) -> None:
        self.device = device
        self.metric = metric
        self.value: float | bool | str = 0.0
        self.ts = 0
        self.tags: Mapping[str, str] = {}
        self.trace_id = ""
        self.topic = ""
        self.windows: dict[int, Window] = {}
        self.store: Points | None = None
        self.plan: Any = None  # the engine's rules for this series (runtime._Plan)

    def record(self, value: float | bool | str, now: int) -> None:
        """Note a reading at ``now`` and feed the windows (strings feed none)."""
        self.value = value
        self.ts = now
        store = self.store
        if store is not None:
            if type(value) is float:
                store.add(now, value)
            elif not isinstance(value, str):
                store.add(now, float(value))

    @property
    def dropped(self) -> int:
        """Points dropped by the bound since this series got windows."""
        return self.store.dropped if self.store is not None else 0

    def set_spans(self, spans: Iterable[int], max_points: int) -> None:
        """Keep windows for exactly ``spans``; a new span starts with the history kept."""
        wanted = sorted(set(spans), reverse=True)
        if not wanted:
            self.windows, self.store = {}, None
            return
        store = self.store
        if store is None:
            store = self.store = Points(max_points)
        store.max_points = max_points
        old = self.windows
        tsl = store.ts
        head = store.head
        now = tsl[-1] if tsl else 0
        new: dict[int, Window] = {}
        for span in wanted:
            window = old.get(span)
            if window is None:
                window = Window(span, max_points, store)
                if span > 0 and tsl:
                    window.start = max(head, bisect_right(tsl, now - span, head))
                    window.n = len(tsl) - window.start
                    window.at = now
                    window.recompute()
            new[span] = window
        self.windows = new
        store.windows = [w for w in new.values() if w.span > 0]
        store.expire(max((w.at for w in store.windows), default=now))
        while store.windows and len(store) > max_points:
            store.drop_oldest()
        if not store.windows:
            tsl.clear()
            store.values.clear()
        elif store.head >= _COMPACT_AT:
            store.compact()
