"""The alert state machine of one (rule, device), as pure functions.

Shaped after Prometheus ``rules/alerting.go``: an explicit :class:`AlertState`
plus an :class:`AlertRecord` with ``active_at``, ``fired_at``, ``resolved_at``,
``last_sent_at``; time is always an argument. Unlike Bytewax-style steps that
mutate, :func:`evaluate` and :func:`advance` return a *new* record and the
:class:`Transition` s that happened, so the table below can be tested without
an engine, a clock or asyncio.

=========  ===============================================  ==========================
from       event                                            to
=========  ===============================================  ==========================
inactive   ``when`` true                                    pending; firing at once
                                                            when ``for`` is 0 (no
                                                            pending transition then)
pending    ``when`` false                                   inactive (published)
pending    ``for`` elapsed (deadline ``active_at + for``)   firing, actions run
firing     ``clear`` true, held ``keep_firing_for``          resolved, on_resolved runs
           (a ``clear`` false — or undefined — restarts
           the hold)
firing     ``repeat`` elapsed since ``last_sent_at``        firing (notified again)
resolved   ``when`` true                                    pending (or firing)
=========  ===============================================  ==========================

An undefined ``when`` (``None``) neither starts nor ends anything. Deadlines are
inclusive: a transition due at ``t`` happens at an evaluation or tick at ``t``.
Time-based transitions happen at their exact deadline, not at the (later) time
the caller happened to call, so a live tick and a replay agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

Value = float | bool | str


class AlertState(StrEnum):
    INACTIVE = "inactive"
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class Timing:
    """The time-related settings of a rule, in ns (``repeat`` 0 = never re-notify)."""

    for_: int = 0
    keep_firing_for: int = 0
    repeat: int = 0


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """Where one (rule, device) alert stands.

    ``clear_since`` is when the current unbroken run of ``clear`` began (firing
    only). ``value`` and ``trace_id`` are those of the evaluation that caused the
    last transition.
    """

    state: AlertState = AlertState.INACTIVE
    active_at: int | None = None
    fired_at: int | None = None
    resolved_at: int | None = None
    last_sent_at: int | None = None
    clear_since: int | None = None
    value: Value | None = None
    trace_id: str = ""


INITIAL = AlertRecord()

Run = Literal["actions", "on_resolved"] | None


@dataclass(frozen=True, slots=True)
class Transition:
    """A state change (or a repeat notification) to publish; ``run`` names the actions."""

    state: AlertState
    at: int
    run: Run = None
    repeat: bool = False


def deadline(rec: AlertRecord, timing: Timing) -> int | None:
    """The next time at which :func:`advance` would change ``rec`` (None: never)."""
    if rec.state is AlertState.PENDING and rec.active_at is not None:
        return rec.active_at + timing.for_
    if rec.state is AlertState.FIRING:
        due: int | None = None
        if rec.clear_since is not None:
            due = rec.clear_since + timing.keep_firing_for
        if timing.repeat and rec.last_sent_at is not None:
            again = rec.last_sent_at + timing.repeat
            due = again if due is None else min(due, again)
        return due
    return None


def advance(rec: AlertRecord, timing: Timing, now: int) -> tuple[AlertRecord, list[Transition]]:
    """Apply every time-based transition due at or before ``now``, each at its deadline."""
    out: list[Transition] = []
    while True:
        due = deadline(rec, timing)
        if due is None or due > now:
            return rec, out
        if rec.state is AlertState.PENDING:
            rec = AlertRecord(
                AlertState.FIRING,
                rec.active_at,
                due,
                rec.resolved_at,
                due,
                None,
                rec.value,
                rec.trace_id,
            )
            out.append(Transition(AlertState.FIRING, due, "actions"))
        elif rec.clear_since is not None and due == rec.clear_since + timing.keep_firing_for:
            rec = _resolve(rec, due)
            out.append(Transition(AlertState.RESOLVED, due, "on_resolved"))
        else:
            rec = AlertRecord(
                rec.state,
                rec.active_at,
                rec.fired_at,
                rec.resolved_at,
                due,
                rec.clear_since,
                rec.value,
                rec.trace_id,
            )
            out.append(Transition(AlertState.FIRING, due, None, repeat=True))


def evaluate(
    rec: AlertRecord,
    timing: Timing,
    now: int,
    when: bool | None,
    clear: bool | None,
    value: Value | None = None,
    trace_id: str = "",
) -> tuple[AlertRecord, list[Transition]]:
    """Apply one evaluation at ``now`` (after any due time-based transitions).

    ``when`` is used while not firing, ``clear`` while firing; ``None`` means
    undefined. The caller may pass ``None`` for the one it did not evaluate.
    """
    rec, out = advance(rec, timing, now)
    state = rec.state
    if state is AlertState.FIRING:
        if clear is True:
            since = rec.clear_since if rec.clear_since is not None else now
            if now - since >= timing.keep_firing_for:
                rec = _resolve(rec, now, value, trace_id)
                out.append(Transition(AlertState.RESOLVED, now, "on_resolved"))
            elif rec.clear_since is None:
                rec = _clear_since(rec, now)
        elif rec.clear_since is not None:
            rec = _clear_since(rec, None)
        return rec, out
    if when is True:
        if state is AlertState.PENDING:
            return rec, out
        if timing.for_ == 0:
            rec = AlertRecord(
                AlertState.FIRING,
                active_at=now,
                fired_at=now,
                last_sent_at=now,
                value=value,
                trace_id=trace_id,
            )
            out.append(Transition(AlertState.FIRING, now, "actions"))
        else:
            rec = AlertRecord(AlertState.PENDING, active_at=now, value=value, trace_id=trace_id)
            out.append(Transition(AlertState.PENDING, now))
        return rec, out
    if when is False and state is AlertState.PENDING:
        rec = AlertRecord(
            AlertState.INACTIVE,
            rec.active_at,
            rec.fired_at,
            rec.resolved_at,
            rec.last_sent_at,
            rec.clear_since,
            value,
            trace_id or rec.trace_id,
        )
        out.append(Transition(AlertState.INACTIVE, now))
    return rec, out


def _resolve(
    rec: AlertRecord, at: int, value: Value | None = None, trace_id: str = ""
) -> AlertRecord:
    return AlertRecord(
        AlertState.RESOLVED,
        rec.active_at,
        rec.fired_at,
        at,
        rec.last_sent_at,
        None,
        rec.value if value is None else value,
        trace_id or rec.trace_id,
    )


def _clear_since(rec: AlertRecord, since: int | None) -> AlertRecord:
    # dataclasses.replace() would do, at several times the cost (it runs per evaluation).
    return AlertRecord(
        rec.state,
        rec.active_at,
        rec.fired_at,
        rec.resolved_at,
        rec.last_sent_at,
        since,
        rec.value,
        rec.trace_id,
    )
