"""The gateway's one retry policy: capped exponential backoff with jitter."""

from __future__ import annotations

import pytest

from gateway.retry import Backoff


def test_without_jitter_the_wait_doubles_from_base_up_to_the_cap() -> None:
    backoff = Backoff(base=0.5, cap=3.0, jitter=0.0)
    assert [backoff.next() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_jitter_draws_between_the_jittered_floor_and_the_ceiling() -> None:
    shortest = Backoff(base=1.0, cap=60.0, jitter=0.5, rand=lambda: 0.999999)
    longest = Backoff(base=1.0, cap=60.0, jitter=0.5, rand=lambda: 0.0)
    for attempt, ceiling in [(0, 1.0), (1, 2.0), (3, 8.0), (10, 60.0)]:
        assert longest.delay(attempt) == ceiling
        assert shortest.delay(attempt) == pytest.approx(ceiling / 2, rel=1e-5)


def test_default_waits_vary_but_stay_within_bounds() -> None:
    backoff = Backoff()
    waits = [backoff.delay(2) for _ in range(50)]
    assert all(1.0 <= w <= 2.0 for w in waits)
    assert len(set(waits)) > 1


def test_reset_starts_again_from_the_shortest_wait() -> None:
    backoff = Backoff(base=1.0, cap=10.0, jitter=0.0)
    backoff.next()
    backoff.next()
    backoff.reset()
    assert backoff.next() == 1.0


def test_a_very_long_outage_stays_at_the_cap() -> None:
    backoff = Backoff(base=0.5, cap=30.0, jitter=0.0)
    assert backoff.delay(5000) == 30.0


def test_jitter_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(ValueError, match="jitter"):
        Backoff(jitter=1.5)
