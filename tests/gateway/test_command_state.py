"""A device's command state on a fake clock: defer, retry, ack, reject, give up, supersede.

No broker, no timers: the transition functions take ``now``. The same behaviour with
a real broker and devices is covered in test_actions_e2e.py.
"""

from __future__ import annotations

from typing import Any

from gateway.actions import commands
from gateway.actions.commands import (
    IDLE,
    RETRY_CAP,
    CommandOutcome,
    Defer,
    DeviceCommands,
    Finished,
    Origin,
    Pacing,
    Retry,
    Send,
)
from gateway.retry import Backoff

RULE = Origin("rule", "too_hot", "trace-1")
API = Origin("api")


def steady(min_interval: float = 0.0, ack_timeout: float = 1.0, retries: int = 3) -> Pacing:
    """Pacing without jitter, so every retry wait is its ceiling."""
    return Pacing(min_interval, ack_timeout, retries, Backoff(ack_timeout, RETRY_CAP, jitter=0))


def send(
    state: DeviceCommands,
    pacing: Pacing,
    settings: dict[str, Any],
    now: float,
    command_id: str = "c1",
) -> DeviceCommands:
    """Submit a request that goes out at once, and mark it sent."""
    state, superseded, step = commands.submit(state, pacing, settings, RULE, now)
    assert superseded is None and isinstance(step, Send)
    return commands.sent(state, pacing, command_id, step.settings, step.origin, now)


def test_a_request_with_nothing_outstanding_is_sent_and_awaits_its_answer() -> None:
    pacing = steady(ack_timeout=2.0)
    state, superseded, step = commands.submit(IDLE, pacing, {"speed": 40}, RULE, 10.0)
    assert superseded is None
    assert step == Send({"speed": 40}, RULE)
    state = commands.sent(state, pacing, "c1", step.settings, step.origin, 10.0)
    assert state.inflight is not None
    assert (state.inflight.id, state.inflight.attempt, state.inflight.due) == ("c1", 0, 12.0)
    assert state.last_sent == 10.0


def test_within_min_interval_a_request_is_deferred_until_the_interval_is_over() -> None:
    pacing = steady(min_interval=5.0)
    state = send(IDLE, pacing, {"speed": 10}, 100.0)
    state, _ = commands.acked(state, "c1")
    state, superseded, step = commands.submit(state, pacing, {"speed": 20}, API, 101.0)
    assert superseded is None
    assert step == Defer({"speed": 20}, API, until=105.0, wait=4.0)
    assert state.release_at == 105.0


def test_while_deferred_the_latest_request_wins_and_keeps_the_release_time() -> None:
    pacing = steady(min_interval=5.0)
    state = send(IDLE, pacing, {"speed": 10}, 100.0)
    state, _ = commands.acked(state, "c1")
    state, _, _ = commands.submit(state, pacing, {"speed": 20, "mode": "auto"}, API, 101.0)
    state, _, step = commands.submit(state, pacing, {"speed": 30}, RULE, 103.0)
    assert step == Defer({"speed": 30, "mode": "auto"}, RULE, until=105.0, wait=2.0)
    state, released = commands.release(state)
    assert released == Send({"speed": 30, "mode": "auto"}, RULE)
    assert state.deferred == {} and state.release_at is None


def test_a_release_after_the_deferred_settings_were_sent_sends_nothing() -> None:
    pacing = steady(min_interval=5.0)
    state = send(IDLE, pacing, {"speed": 10}, 100.0)
    state, _ = commands.acked(state, "c1")
    state, _, _ = commands.submit(state, pacing, {"speed": 20, "mode": "auto"}, API, 101.0)
    state, _, step = commands.submit(state, pacing, {"speed": 30}, API, 106.0)
    assert step == Send({"speed": 30, "mode": "auto"}, API)  # took the deferred along
    state, released = commands.release(state)
    assert released is None


def test_a_new_request_supersedes_the_outstanding_command_and_merges_its_settings() -> None:
    pacing = steady()
    state = send(IDLE, pacing, {"speed": 100, "mode": "manual"}, 0.0)
    state, superseded, step = commands.submit(state, pacing, {"speed": 0}, API, 0.5)
    assert superseded is not None
    assert superseded.outcome is CommandOutcome.SUPERSEDED and superseded.command.id == "c1"
    assert superseded.alert is None
    assert step == Send({"speed": 0, "mode": "manual"}, API)
    assert state.inflight is None


def test_an_ack_finishes_the_command() -> None:
    pacing = steady()
    state = send(IDLE, pacing, {"speed": 40}, 0.0)
    state, done = commands.acked(state, "c1")
    assert done is not None
    assert (done.outcome, done.command.id, done.alert) == (CommandOutcome.ACKED, "c1", None)
    assert state.inflight is None and not state.failed


def test_an_answer_to_another_command_changes_nothing() -> None:
    pacing = steady()
    state = send(IDLE, pacing, {"speed": 40}, 0.0)
    assert commands.acked(state, "old") == (state, None)
    assert commands.rejected(state, "old") == (state, None)
    assert commands.acked(IDLE, "c1") == (IDLE, None)


def test_a_rejection_finishes_the_command() -> None:
    pacing = steady()
    state = send(IDLE, pacing, {"speed": 40}, 0.0)
    state, done = commands.rejected(state, "c1")
    assert done is not None
    assert (done.outcome, done.command.id, done.alert) == (CommandOutcome.REJECTED, "c1", None)
    assert state.inflight is None and not state.failed


def test_no_answer_retries_with_the_same_id_and_a_doubling_wait_up_to_the_cap() -> None:
    pacing = steady(ack_timeout=10.0, retries=5)
    state = send(IDLE, pacing, {"speed": 40}, 0.0)
    now, waits = 0.0, []
    for attempt in range(5):
        assert state.inflight is not None
        now = state.inflight.due
        state, step = commands.timed_out(state, pacing, "c1", attempt, now)
        assert isinstance(step, Retry)
        assert (step.command.id, step.command.attempt) == ("c1", attempt + 1)
        assert step.command.settings == {"speed": 40}
        waits.append(step.command.due - now)
    assert waits == [20.0, 40.0, RETRY_CAP, RETRY_CAP, RETRY_CAP]


def test_retry_waits_have_jitter_within_half_the_ceiling_and_the_ceiling() -> None:
    pacing = commands.pacing(min_interval=0.0, ack_timeout=1.0, retries=1)
    for _ in range(20):
        state = send(IDLE, pacing, {"speed": 40}, 0.0)
        state, step = commands.timed_out(state, pacing, "c1", 0, 1.0)
        assert isinstance(step, Retry)
        assert 1.0 <= step.command.due - 1.0 <= 2.0  # ceiling 2 x ack_timeout, at least half


def test_after_the_last_retry_the_command_times_out_and_command_failed_fires() -> None:
    pacing = steady(ack_timeout=1.0, retries=2)
    state = send(IDLE, pacing, {"speed": 100}, 0.0)
    state, _ = commands.timed_out(state, pacing, "c1", 0, 1.0)
    state, _ = commands.timed_out(state, pacing, "c1", 1, 3.0)
    state, step = commands.timed_out(state, pacing, "c1", 2, 7.0)
    assert isinstance(step, Finished)
    assert (step.outcome, step.alert, step.command.attempt) == (
        CommandOutcome.TIMED_OUT,
        "firing",
        2,
    )
    assert state.inflight is None and state.failed


def test_the_next_ack_after_a_failure_resolves_command_failed() -> None:
    pacing = steady(retries=0)
    state = send(IDLE, pacing, {"speed": 100}, 0.0)
    state, step = commands.timed_out(state, pacing, "c1", 0, 1.0)
    assert isinstance(step, Finished) and step.alert == "firing"
    state = send(state, pacing, {"speed": 50}, 2.0, command_id="c2")
    state, done = commands.acked(state, "c2")
    assert done is not None and done.alert == "resolved"
    assert not state.failed


def test_a_stale_timeout_changes_nothing() -> None:
    pacing = steady(retries=3)
    state = send(IDLE, pacing, {"speed": 40}, 0.0)
    state, _ = commands.timed_out(state, pacing, "c1", 0, 1.0)
    assert commands.timed_out(state, pacing, "c1", 0, 1.5) == (state, None)  # earlier attempt
    assert commands.timed_out(state, pacing, "other", 1, 3.0) == (state, None)
