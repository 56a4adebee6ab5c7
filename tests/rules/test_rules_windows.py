"""Incremental windows agree with a brute-force recomputation, whatever the series."""

from __future__ import annotations

import math
import statistics

from hypothesis import given, settings
from hypothesis import strategies as st

from rules.windows import Series, Window

SPAN = 100


def brute(points: list[tuple[int, float]], now: int) -> list[float]:
    return [v for t, v in points if now - SPAN < t <= now]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40), st.floats(-1e6, 1e6)), max_size=60))
def test_window_aggregates_match_brute_force(steps: list[tuple[int, float]]) -> None:
    w = Window(SPAN, max_points=10_000)
    points: list[tuple[int, float]] = []
    now = 0
    for gap, value in steps:
        now += gap
        w.add(now, value)
        points.append((now, value))
        inside = brute(points, now)
        assert w.count(now) == len(inside)
        assert math.isclose(w.sum(now), math.fsum(inside), rel_tol=1e-9, abs_tol=1e-3)
        assert w.min(now) == min(inside) and w.max(now) == max(inside)
        assert w.last(now) == inside[-1]
        assert math.isclose(w.avg(now) or 0, statistics.fmean(inside), rel_tol=1e-9, abs_tol=1e-3)
        assert math.isclose(
            w.stddev(now) or 0, statistics.pstdev(inside), rel_tol=1e-6, abs_tol=1e-3
        )
        if len(inside) >= 2:
            assert w.delta(now) == inside[-1] - inside[0]


def test_window_expires_with_time_alone() -> None:
    w = Window(SPAN)
    w.add(0, 5.0)
    assert w.count(99) == 1 and w.count(100) == 0
    assert w.avg(100) is None and w.sum(100) == 0.0


def test_rate_is_per_second_and_undefined_on_equal_times() -> None:
    w = Window(60 * 10**9)
    w.add(0, 1.0)
    w.add(0, 2.0)
    assert w.rate(0) is None
    w.add(10 * 10**9, 11.0)
    assert w.rate(10 * 10**9) == 1.0


def test_stddev_is_stable_for_large_offsets() -> None:
    w = Window(10**12)
    for i in range(1000):
        w.add(i, 1e9 + (i % 2))
    assert math.isclose(w.stddev(999) or 0, 0.5, rel_tol=1e-6)


def test_bounded_window_drops_oldest_and_counts() -> None:
    w = Window(10**12, max_points=3)
    for i in range(5):
        w.add(i, float(i))
    assert list(w.points) == [(2, 2.0), (3, 3.0), (4, 4.0)]
    assert w.dropped == 2 and w.min(4) == 2.0


def test_series_feeds_numbers_and_booleans_but_not_strings() -> None:
    s = Series("d", "m")
    s.set_spans([100], 10)
    s.record(True, 1)
    s.record("text", 2)
    s.record(3.0, 3)
    assert [v for _, v in s.windows[100].points] == [1.0, 3.0]
    assert s.value == 3.0


def test_new_span_is_seeded_from_existing_history() -> None:
    s = Series("d", "m")
    s.set_spans([100], 10)
    for t in range(0, 100, 10):
        s.record(1.0, t)
    s.set_spans([100, 50], 10)
    assert s.windows[50].count(90) == 5
