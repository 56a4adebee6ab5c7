"""The command state of one device, as pure functions: send, defer, retry or give up.

Shaped like :mod:`rules.state`: a frozen :class:`DeviceCommands` record per
device and functions that take it with ``now`` (monotonic seconds) and return
the new record plus what the caller must do. No asyncio, no I/O, no clock, so
the table below is tested without a broker
(``tests/gateway/test_command_state.py``); the dispatcher
(:mod:`gateway.actions.dispatcher`) keeps the timers, publishes, journals and
counts.

Events and what the caller must do::

    submit     a checked request        finish the command it supersedes, if any;
                                        Send now, or Defer until min_interval since
                                        the last command is over (settings merge with
                                        the outstanding and deferred ones: newer win)
    release    the deferred time came   Send the merged settings
    sent       the command went out     wait for an answer until its ``due``
    acked      the device confirmed     finish it; resolve a firing command_failed
    rejected   the device said no       finish it
    timed_out  no answer by ``due``     Retry (same id; the wait doubles, with
                                        jitter, up to a cap), or after ``retries``
                                        finish it and fire command_failed

A device has at most one command outstanding, so an answer or a timeout that
names another command (or an earlier attempt) changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Literal

from gateway.retry import Backoff

RETRY_CAP = 60.0  # seconds: the longest wait for an answer, however many retries


class CommandOutcome(StrEnum):
    SENT = "sent"
    ACKED = "acked"
    REJECTED = "rejected"
    TIMED_OUT = "timed_out"
    REFUSED = "refused"
    DEFERRED = "deferred"
    SUPERSEDED = "superseded"


@dataclass(frozen=True, slots=True)
class Origin:
    """Who asked: a rule (with the alert's device and trace) or a person through the API."""

    source: str  # "rule" | "api" | "journal"
    rule: str | None = None
    trace_id: str = ""
    alert_device: str | None = None  # the device whose alert made the rule ask


@dataclass(frozen=True, slots=True)
class Pacing:
    """A device's command timing from ``devices:``, in seconds.

    Retry ``k`` (from 1) waits ``backoff.delay(k)`` for an answer; :func:`pacing`
    makes that ``ack_timeout * 2**k`` capped at :data:`RETRY_CAP`, with jitter.
    """

    min_interval: float
    ack_timeout: float
    retries: int
    backoff: Backoff


def pacing(min_interval: float, ack_timeout: float, retries: int) -> Pacing:
    """A device's pacing, its retry waits doubling from ``ack_timeout``."""
    return Pacing(min_interval, ack_timeout, retries, Backoff(base=ack_timeout, cap=RETRY_CAP))


@dataclass(frozen=True, slots=True)
class Inflight:
    """The command a device has not answered yet; ``attempt`` counts its retries."""

    id: str
    settings: Mapping[str, Any]
    origin: Origin
    attempt: int
    due: float  # when the current attempt times out


@dataclass(frozen=True, slots=True)
class DeviceCommands:
    """Where one device's commands stand.

    ``deferred`` (from ``deferred_origin``) waits for ``release_at``; ``failed``
    says a ``command_failed`` alert is firing for the device.
    """

    inflight: Inflight | None = None
    deferred: Mapping[str, Any] = field(default_factory=dict)
    deferred_origin: Origin | None = None
    release_at: float | None = None
    last_sent: float = float("-inf")
    failed: bool = False


IDLE = DeviceCommands()


@dataclass(frozen=True, slots=True)
class Send:
    """Send ``settings`` now, as a new command."""

    settings: Mapping[str, Any]
    origin: Origin


@dataclass(frozen=True, slots=True)
class Defer:
    """``settings`` go out at ``until``, ``wait`` seconds from now (``min_interval``)."""

    settings: Mapping[str, Any]
    origin: Origin
    until: float
    wait: float


@dataclass(frozen=True, slots=True)
class Retry:
    """Send ``command`` again (same id); its answer is due at ``command.due``."""

    command: Inflight


@dataclass(frozen=True, slots=True)
class Finished:
    """``command`` ended with ``outcome``; ``alert`` says ``command_failed`` fires or resolves."""

    command: Inflight
    outcome: CommandOutcome
    alert: Literal["firing", "resolved"] | None = None


def submit(
    state: DeviceCommands,
    pacing: Pacing,
    settings: Mapping[str, Any],
    origin: Origin,
    now: float,
) -> tuple[DeviceCommands, Finished | None, Send | Defer]:
    """A checked request: the command it supersedes, if any, and whether to send or defer."""
    desired: dict[str, Any] = {}
    superseded = None
    if state.inflight is not None:
        desired.update(state.inflight.settings)
        superseded = Finished(state.inflight, CommandOutcome.SUPERSEDED)
    desired.update(state.deferred)
    desired.update(settings)
    wait = state.last_sent + pacing.min_interval - now
    if wait > 0:
        # A release already planned stays: last_sent has not moved since it was planned.
        until = state.release_at if state.release_at is not None else now + wait
        deferred = replace(
            state, inflight=None, deferred=desired, deferred_origin=origin, release_at=until
        )
        return deferred, superseded, Defer(desired, origin, until, wait)
    cleared = replace(state, inflight=None, deferred={}, deferred_origin=None, release_at=None)
    return cleared, superseded, Send(desired, origin)


def release(state: DeviceCommands) -> tuple[DeviceCommands, Send | None]:
    """The deferred time came: send what waited (nothing, if a later request sent it)."""
    cleared = replace(state, deferred={}, deferred_origin=None, release_at=None)
    if not state.deferred or state.deferred_origin is None:
        return cleared, None
    return cleared, Send(state.deferred, state.deferred_origin)


def sent(
    state: DeviceCommands,
    pacing: Pacing,
    command_id: str,
    settings: Mapping[str, Any],
    origin: Origin,
    now: float,
) -> DeviceCommands:
    """Command ``command_id`` went out at ``now``: its answer is due ``ack_timeout`` later."""
    command = Inflight(command_id, dict(settings), origin, 0, now + pacing.ack_timeout)
    return replace(state, inflight=command, last_sent=now)


def acked(state: DeviceCommands, command_id: str) -> tuple[DeviceCommands, Finished | None]:
    """The device confirmed ``command_id``; a firing ``command_failed`` resolves."""
    command = _outstanding(state, command_id)
    if command is None:
        return state, None
    alert: Literal["resolved"] | None = "resolved" if state.failed else None
    done = Finished(command, CommandOutcome.ACKED, alert)
    return replace(state, inflight=None, failed=False), done


def rejected(state: DeviceCommands, command_id: str) -> tuple[DeviceCommands, Finished | None]:
    """The device refused ``command_id``."""
    command = _outstanding(state, command_id)
    if command is None:
        return state, None
    return replace(state, inflight=None), Finished(command, CommandOutcome.REJECTED)


def timed_out(
    state: DeviceCommands, pacing: Pacing, command_id: str, attempt: int, now: float
) -> tuple[DeviceCommands, Retry | Finished | None]:
    """No answer to attempt ``attempt`` of ``command_id``: retry, or give up after ``retries``."""
    command = _outstanding(state, command_id)
    if command is None or command.attempt != attempt:
        return state, None
    if command.attempt < pacing.retries:
        retry = command.attempt + 1
        again = replace(command, attempt=retry, due=now + pacing.backoff.delay(retry))
        return replace(state, inflight=again), Retry(again)
    done = Finished(command, CommandOutcome.TIMED_OUT, "firing")
    return replace(state, inflight=None, failed=True), done


def _outstanding(state: DeviceCommands, command_id: str) -> Inflight | None:
    command = state.inflight
    return command if command is not None and command.id == command_id else None
