"""Sliding time windows per (device, metric), updated incrementally.

A :class:`Window` of span D evaluated at time t holds the points with
``t − D < ts ≤ t`` (DESIGN §6). It keeps running sums (``count``, ``sum``,
shifted sum of squares for ``stddev``) and two monotonic deques (``min``,
``max``), so adding a point and answering any function costs O(1) amortised,
however many rules read it.

Memory bound: a window keeps at most ``max_points`` points (default 1,000:
a 10-minute window at 1 Hz needs 600). Beyond it the *oldest* point is dropped
and counted in :attr:`Window.dropped`; the window then covers less than D,
which the counter makes visible. A series keeps one window per distinct span
that loaded rules ask of its metric, and nothing longer than the longest.

Values: numbers as they are, booleans as 1.0/0.0 (``avg(door_open, 1h)`` is the
fraction of time-samples the door was open); strings never enter a window.

Numerics: running sums drift when points are subtracted, so sums are taken
relative to a reference value (the first point since the window was last
empty — the "shifted data" variance algorithm) and recomputed exactly from the
points every ``_RECOMPUTE_EVERY`` removals, whenever the window empties, and
when ``stddev`` sees that the reference has drifted far from the data.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from math import sqrt

Point = tuple[int, float]

DEFAULT_MAX_POINTS = 1000
_RECOMPUTE_EVERY = 4096


class Window:
    """Points of one series within the last ``span`` ns, with O(1) aggregates."""

    __slots__ = (
        "_big",
        "_maxs",
        "_mins",
        "_n",
        "_ref",
        "_removals",
        "_s1",
        "_s2",
        "dropped",
        "max_points",
        "points",
        "span",
    )

    def __init__(self, span: int, max_points: int = DEFAULT_MAX_POINTS) -> None:
        self.span = span
        self.max_points = max_points
        self.points: deque[Point] = deque()
        self._mins: deque[Point] = deque()  # increasing values: front is the minimum
        self._maxs: deque[Point] = deque()  # decreasing values: front is the maximum
        self._n = 0
        self._ref = 0.0
        self._s1 = 0.0  # sum of (v - ref)
        self._s2 = 0.0  # sum of (v - ref)^2
        self._removals = 0
        self._big = 0.0  # largest (v - ref)^2 added since the last exact recompute
        self.dropped = 0

    def add(self, ts: int, value: float) -> None:
        """Append a point (``ts`` never decreases) and expire what fell out of the span."""
        self.expire(ts)
        point = (ts, value)
        if not self.points:
            self._ref = value
        self.points.append(point)
        d = value - self._ref
        self._n += 1
        self._s1 += d
        dd = d * d
        self._s2 += dd
        if dd > self._big:
            self._big = dd
        mins = self._mins
        while mins and mins[-1][1] >= value:
            mins.pop()
        mins.append(point)
        maxs = self._maxs
        while maxs and maxs[-1][1] <= value:
            maxs.pop()
        maxs.append(point)
        if self._n > self.max_points:
            self._pop_oldest()
            self.dropped += 1

    def expire(self, now: int) -> None:
        """Drop points with ``ts <= now - span``."""
        cutoff = now - self.span
        points = self.points
        while points and points[0][0] <= cutoff:
            self._pop_oldest()

    def _pop_oldest(self) -> None:
        point = self.points.popleft()
        if self._mins and self._mins[0] is point:
            self._mins.popleft()
        if self._maxs and self._maxs[0] is point:
            self._maxs.popleft()
        self._n -= 1
        if self._n == 0:
            self._s1 = self._s2 = self._big = 0.0
            self._removals = 0
            return
        d = point[1] - self._ref
        self._s1 -= d
        self._s2 -= d * d
        self._removals += 1
        if self._removals >= _RECOMPUTE_EVERY:
            self._recompute()

    def _recompute(self) -> None:
        self._removals = 0
        self._ref = self.points[0][1]
        s1 = s2 = big = 0.0
        for _, v in self.points:
            d = v - self._ref
            s1 += d
            s2 += d * d
            big = max(big, d * d)
        self._s1, self._s2, self._big = s1, s2, big

    # Aggregates at time ``now``; ``None`` means undefined (DESIGN §6).

    def count(self, now: int) -> float:
        self.expire(now)
        return float(self._n)

    def sum(self, now: int) -> float:
        self.expire(now)
        return self._s1 + self._n * self._ref if self._n else 0.0

    def avg(self, now: int) -> float | None:
        self.expire(now)
        return self._ref + self._s1 / self._n if self._n else None

    def min(self, now: int) -> float | None:
        self.expire(now)
        return self._mins[0][1] if self._mins else None

    def max(self, now: int) -> float | None:
        self.expire(now)
        return self._maxs[0][1] if self._maxs else None

    def last(self, now: int) -> float | None:
        self.expire(now)
        return self.points[-1][1] if self.points else None

    def delta(self, now: int) -> float | None:
        self.expire(now)
        if self._n < 2:
            return None
        return self.points[-1][1] - self.points[0][1]

    def rate(self, now: int) -> float | None:
        """(last − first) / (t_last − t_first), per second."""
        self.expire(now)
        if self._n < 2:
            return None
        (t0, v0), (t1, v1) = self.points[0], self.points[-1]
        if t1 == t0:
            return None
        return (v1 - v0) * 1e9 / (t1 - t0)

    def stddev(self, now: int) -> float | None:
        """Population standard deviation."""
        self.expire(now)
        n = self._n
        if not n:
            return None
        mean = self._s1 / n
        var = self._s2 / n - mean * mean
        if mean * mean > 4 * n * var or var < self._big * 1e-9:
            # Cancellation: either the reference drifted far from the data (its
            # point expired) or a huge value came and went, so the subtraction lost
            # the digits that matter. Right after an exact recompute (reference
            # taken from the data) mean² <= n·var and var >= big/(2n), so neither
            # test can fire again until the data changes that way again.
            self._recompute()
            mean = self._s1 / n
            var = self._s2 / n - mean * mean
        return sqrt(max(var, 0.0))

    def seed(self, points: Iterable[Point]) -> None:
        """Fill from another window's points (on reload, a new span reuses history)."""
        for ts, value in points:
            self.add(ts, value)


class Series:
    """The latest reading of one (device, metric) and its windows (by span in ns)."""

    __slots__ = ("device", "metric", "tags", "topic", "trace_id", "ts", "value", "windows")

    def __init__(self, device: str, metric: str) -> None:
        self.device = device
        self.metric = metric
        self.value: float | bool | str = 0.0
        self.ts = 0
        self.tags: Mapping[str, str] = {}
        self.trace_id = ""
        self.topic = ""
        self.windows: dict[int, Window] = {}

    def record(self, value: float | bool | str, now: int) -> None:
        """Note a reading at ``now`` and feed every window (strings feed none)."""
        self.value = value
        self.ts = now
        if self.windows and not isinstance(value, str):
            number = float(value)
            for window in self.windows.values():
                window.add(now, number)

    def set_spans(self, spans: Iterable[int], max_points: int) -> None:
        """Keep windows for exactly ``spans``; a new span is seeded from the longest kept one."""
        wanted = set(spans)
        old = self.windows
        longest = max(old.values(), key=lambda w: w.span, default=None)
        new: dict[int, Window] = {}
        for span in sorted(wanted):
            if span in old:
                new[span] = old[span]
            else:
                window = Window(span, max_points)
                if longest is not None:
                    window.seed(longest.points)
                    window.dropped = 0
                new[span] = window
        self.windows = new
