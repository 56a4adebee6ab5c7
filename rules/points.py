"""The point store of one series, shared by its windows.

:class:`Points` holds two parallel lists (timestamps and values); each window
of the series (:mod:`rules.windows`) is a cursor into it whose points are always
a suffix of the store, so adding a point moves every window over it in one loop.

Memory bound: a store keeps at most ``max_points`` points (default 1,000: a
10-minute window at 1 Hz needs 600) and nothing older than its longest span.
Beyond the bound the *oldest* point is dropped and counted once in
:attr:`Points.dropped`; windows that held it then cover less than D, which the
counter makes visible. Because every window is a suffix of the store, this is
exactly "each window keeps its newest ``max_points`` points". A series keeps one
store, and one window per distinct span that loaded rules ask of its metric.
"""

from __future__ import annotations

from collections import deque
from typing import Protocol

__all__ = ["DEFAULT_MAX_POINTS", "Point", "Points"]

Point = tuple[int, float]


class Cursor(Protocol):
    """What the store moves in a window (:class:`rules.windows.Window`) as points come and go."""

    span: int
    start: int
    n: int
    at: int
    ref: float
    s1: float
    s2: float
    big: float
    summing: bool
    track_min: bool
    track_max: bool
    mins: deque[int]
    maxs: deque[int]

    def drop_first(self) -> None: ...

    def drop_until(self, cutoff: int) -> None: ...

    def drop_to(self, stop: int) -> None: ...

DEFAULT_MAX_POINTS = 1000
_COMPACT_AT = 1024  # dead slots at the front of a store before the lists are shifted


class Points:
    """The points of one series, shared by its windows (longest span first).

    ``ts[head:]``/``values[head:]`` are live, ``head`` being the start of the
    longest window; the dead prefix is cut off once it is both longer than
    ``_COMPACT_AT`` and than the live part (amortised O(1) per point).
    """

    __slots__ = ("dropped", "max_points", "ts", "values", "windows")

    def __init__(self, max_points: int = DEFAULT_MAX_POINTS) -> None:
        self.ts: list[int] = []
        self.values: list[float] = []
        self.windows: list[Cursor] = []  # spans > 0, longest first
        self.max_points = max_points
        self.dropped = 0

    @property
    def head(self) -> int:
        return self.windows[0].start if self.windows else len(self.ts)

    def __len__(self) -> int:
        return len(self.ts) - self.head

    def add(self, ts: int, value: float) -> None:
        """Append a point (``ts`` never decreases) and move every window over it."""
        tsl = self.ts
        vals = self.values
        tsl.append(ts)
        vals.append(value)
        last = len(tsl) - 1
        limit = self.max_points
        windows = self.windows
        # One loop, few calls: this runs for every reading.
        for w in windows:
            i = w.start
            cut = ts - w.span
            if tsl[i] <= cut:  # (tsl[last] = ts > cut: span > 0)
                if tsl[i + 1] > cut:
                    w.drop_first()  # the steady state of a window full by time
                else:
                    w.drop_until(cut)
            n = w.n
            if n >= limit:
                # The bound: each window keeps its newest `limit` points, which is the
                # same as the store keeping its newest `limit` (windows are suffixes).
                w.drop_first()
                n -= 1
                if w is windows[0]:
                    self.dropped += 1
            w.n = n + 1
            if w.summing:
                if n == 0:
                    w.ref = value
                d = value - w.ref
                w.s1 += d
                dd = d * d
                w.s2 += dd
                if dd > w.big:
                    w.big = dd
            if w.track_min:
                mins = w.mins
                while mins and vals[mins[-1]] >= value:
                    mins.pop()
                mins.append(last)
            if w.track_max:
                maxs = w.maxs
                while maxs and vals[maxs[-1]] <= value:
                    maxs.pop()
                maxs.append(last)
            w.at = ts
        if windows:
            head = windows[0].start
            if head >= _COMPACT_AT and 2 * head >= last:
                self.compact()
        else:
            # No window: nothing needs the points (a store outlives its spans only
            # between set_spans calls).
            tsl.clear()
            vals.clear()

    def expire(self, now: int) -> None:
        """Expire every window at ``now``.

        All windows of a store are always expired to the same time, so a longer
        span never starts after a shorter one: the longest window's start is the
        head of the store.
        """
        for w in self.windows:
            if now > w.at:
                w.at = now
                if w.n:
                    w.drop_until(now - w.span)

    def drop_oldest(self) -> None:
        """Drop the oldest live point from every window holding it (the bound)."""
        head = self.windows[0].start
        for w in self.windows:
            if w.start != head or w.n == 0:
                break  # shorter windows start later
            w.drop_to(head + 1)
        self.dropped += 1

    def compact(self) -> None:
        head = self.head
        del self.ts[:head]
        del self.values[:head]
        for w in self.windows:
            w.start -= head
            if w.track_min:
                w.mins = deque(i - head for i in w.mins)
            if w.track_max:
                w.maxs = deque(i - head for i in w.maxs)
