"""The pure transition functions, table-driven, no engine and no clock."""

from __future__ import annotations

import pytest

from rules.state import (
    INITIAL,
    AlertRecord,
    AlertState,
    Timing,
    advance,
    deadline,
    evaluate,
)

I, P, F, R = AlertState.INACTIVE, AlertState.PENDING, AlertState.FIRING, AlertState.RESOLVED  # noqa: E741


@pytest.mark.parametrize(
    ("rec", "timing", "now", "when", "clear", "state", "emitted"),
    [
        # inactive + when true → pending, or firing at once without `for`
        (INITIAL, Timing(for_=60), 10, True, None, P, [P]),
        (INITIAL, Timing(), 10, True, None, F, [F]),
        # undefined or false when starts nothing
        (INITIAL, Timing(for_=60), 10, None, None, I, []),
        (INITIAL, Timing(for_=60), 10, False, None, I, []),
        # pending + when false → inactive (published); undefined keeps pending
        (AlertRecord(P, active_at=0), Timing(for_=60), 10, False, None, I, [I]),
        (AlertRecord(P, active_at=0), Timing(for_=60), 10, None, None, P, []),
        # pending, `for` elapsed by the time of this evaluation → fires at the deadline
        (AlertRecord(P, active_at=0), Timing(for_=60), 60, True, None, F, [F]),
        # firing + clear true, no keep_firing_for → resolved
        (AlertRecord(F, active_at=0, fired_at=0, last_sent_at=0), Timing(), 5, None, True, R, [R]),
        # firing + clear false/undefined → still firing
        (AlertRecord(F, active_at=0, fired_at=0, last_sent_at=0), Timing(), 5, None, False, F, []),
        (AlertRecord(F, active_at=0, fired_at=0, last_sent_at=0), Timing(), 5, None, None, F, []),
        # resolved + when true → pending again
        (
            AlertRecord(R, active_at=0, fired_at=0, resolved_at=3),
            Timing(for_=9),
            5,
            True,
            None,
            P,
            [P],
        ),
    ],
)
def test_transition_table(
    rec: AlertRecord,
    timing: Timing,
    now: int,
    when: bool | None,
    clear: bool | None,
    state: AlertState,
    emitted: list[AlertState],
) -> None:
    new, transitions = evaluate(rec, timing, now, when, clear)
    assert new.state is state
    assert [t.state for t in transitions] == emitted


def test_pending_fires_exactly_at_deadline_on_advance() -> None:
    rec = AlertRecord(P, active_at=100)
    assert deadline(rec, Timing(for_=30)) == 130
    same, none = advance(rec, Timing(for_=30), 129)
    assert same is rec and none == []
    fired, [tr] = advance(rec, Timing(for_=30), 500)
    assert fired.state is F and fired.fired_at == 130 and tr.at == 130 and tr.run == "actions"


def test_keep_firing_for_hold_restarts_on_clear_false() -> None:
    timing = Timing(keep_firing_for=10)
    rec = AlertRecord(F, active_at=0, fired_at=0, last_sent_at=0)
    rec, out = evaluate(rec, timing, 100, None, True)
    assert rec.clear_since == 100 and out == []
    rec, out = evaluate(rec, timing, 105, None, False)
    assert rec.clear_since is None and rec.state is F
    rec, out = evaluate(rec, timing, 106, None, True)
    assert deadline(rec, timing) == 116
    rec, [tr] = advance(rec, timing, 116)
    assert rec.state is R and rec.resolved_at == 116 and tr.run == "on_resolved"


def test_repeat_counts_from_last_notification() -> None:
    timing = Timing(repeat=50)
    rec = AlertRecord(F, active_at=0, fired_at=0, last_sent_at=0)
    rec, out = advance(rec, timing, 120)
    assert [(t.at, t.repeat, t.run) for t in out] == [(50, True, None), (100, True, None)]
    assert rec.last_sent_at == 100 and deadline(rec, timing) == 150


def test_records_are_immutable_and_unchanged_on_no_transition() -> None:
    rec = AlertRecord(P, active_at=0)
    same, out = evaluate(rec, Timing(for_=60), 10, True, None)
    assert same is rec and out == []
