"""The windows of one series share one point store; each must still agree with a
brute-force recomputation over exactly its own span (DESIGN §6: ``t − D < ts ≤ t``),
bounded to the newest ``max_points`` points, whatever the spans, the points, the
queries between them and the order in which functions are first asked for."""

from __future__ import annotations

import math
import statistics

from hypothesis import given, settings
from hypothesis import strategies as st

from rules.windows import Series, Window

FUNCTIONS = ("count", "sum", "avg", "min", "max", "last", "delta", "rate", "stddev")

steps = st.lists(
    st.one_of(
        # a point after a gap (0: same timestamp)
        st.tuples(st.just("add"), st.integers(0, 25), st.floats(-1e6, 1e6)),
        # a query of one function of one window, after time passed without points
        st.tuples(st.just("ask"), st.integers(0, 30), st.sampled_from(FUNCTIONS)),
    ),
    max_size=80,
)


def expected(fn: str, inside: list[tuple[int, float]]) -> float | None:
    values = [v for _, v in inside]
    if fn == "count":
        return float(len(values))
    if fn == "sum":
        return math.fsum(values)
    if not values:
        return None
    if fn == "avg":
        return statistics.fmean(values)
    if fn == "min":
        return min(values)
    if fn == "max":
        return max(values)
    if fn == "last":
        return values[-1]
    if fn == "stddev":
        return statistics.pstdev(values)
    if len(values) < 2:
        return None
    if fn == "delta":
        return values[-1] - values[0]
    (t0, v0), (t1, v1) = inside[0], inside[-1]
    return None if t1 == t0 else (v1 - v0) * 1e9 / (t1 - t0)


def close(fn: str, got: float | None, want: float | None) -> bool:
    if got is None or want is None:
        return got is want
    if fn in ("count", "min", "max", "last", "delta"):
        return got == want
    rel = 1e-6 if fn == "stddev" else 1e-9
    return math.isclose(got, want, rel_tol=rel, abs_tol=1e-3)


@settings(max_examples=300, deadline=None)
@given(
    spans=st.lists(st.integers(0, 60), min_size=1, max_size=4, unique=True),
    max_points=st.sampled_from([1, 2, 3, 5, 8, 1000]),
    steps=steps,
)
def test_shared_store_windows_match_brute_force(
    spans: list[int], max_points: int, steps: list[tuple[str, int, object]]
) -> None:
    s = Series("d", "m")
    s.set_spans(spans, max_points)
    points: list[tuple[int, float]] = []
    longest = max(spans)
    kept: list[tuple[int, float]] = []  # what the store must hold (bounded)
    dropped = 0
    now = 0
    for op, gap, arg in steps:
        now += gap
        if op == "add":
            assert isinstance(arg, float)
            s.record(arg, now)
            points.append((now, arg))
            kept = [p for p in kept if p[0] > now - longest] + [(now, arg)]
            if len(kept) > max_points:
                kept.pop(0)
                dropped += 1
            assert s.dropped == dropped
            continue
        assert isinstance(arg, str)
        for span, w in s.windows.items():
            inside = [p for p in points if now - span < p[0] <= now][-max_points:]
            got = getattr(w, arg)(now)
            assert close(arg, got, expected(arg, inside)), (span, arg, got, inside)
            assert w.points == inside
    assert s.store is not None and len(s.store) <= max_points


@settings(max_examples=200, deadline=None)
@given(
    before=st.lists(st.integers(1, 60), min_size=1, max_size=3, unique=True),
    after=st.lists(st.integers(1, 60), min_size=1, max_size=3, unique=True),
    gaps=st.lists(st.integers(0, 20), min_size=1, max_size=40),
)
def test_respanning_keeps_what_the_longest_span_held(
    before: list[int], after: list[int], gaps: list[int]
) -> None:
    """On reload a new span starts from the points kept for the old longest span."""
    s = Series("d", "m")
    s.set_spans(before, 1000)
    now, points = 0, []
    for i, gap in enumerate(gaps):
        now += gap
        s.record(float(i), now)
        points.append((now, float(i)))
    s.set_spans(after, 1000)
    held = [p for p in points if now - max(before) < p[0] <= now]
    for span, w in s.windows.items():
        inside = [p for p in held if now - span < p[0] <= now]
        assert w.points == inside
        assert w.count(now) == len(inside)
        assert close("sum", w.sum(now), math.fsum(v for _, v in inside))
    # and the windows keep moving together afterwards
    now += 7
    s.record(99.0, now)
    held = [p for p in held if now - max(after) < p[0]] + [(now, 99.0)]
    for span, w in s.windows.items():
        assert w.points == [p for p in held if now - span < p[0] <= now]


def test_windows_over_one_store_share_its_points() -> None:
    s = Series("d", "m")
    s.set_spans([10, 20, 40], 1000)
    for t in range(100):
        s.record(float(t), t)
    assert s.store is not None and len(s.store) == 40  # the longest span, once
    assert [s.windows[d].count(99) for d in (10, 20, 40)] == [10, 20, 40]
    assert s.windows[10].min(99) == 90 and s.windows[40].min(99) == 60


def test_store_compacts_without_losing_points() -> None:
    w = Window(50, max_points=10_000)
    for t in range(20_000):
        w.add(t, float(t % 7))
        if t % 997 == 0:
            assert w.max(t) == max(v for _, v in w.points)
    assert len(w.store.ts) < 5_000  # the dead prefix was cut
    assert w.points == [(t, float(t % 7)) for t in range(19_950, 20_000)]
    assert w.min(19_999) == 0.0 and w.count(19_999) == 50


def test_window_of_span_zero_is_always_empty() -> None:
    s = Series("d", "m")
    s.set_spans([0, 10], 1000)
    s.record(1.0, 5)
    assert s.windows[0].count(5) == 0 and s.windows[0].avg(5) is None
    assert s.windows[10].count(5) == 1
