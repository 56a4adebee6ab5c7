"""Device commands with ids, acknowledgements, retries, pacing and supersession.

Lifecycle of a command request (from a rule's action or the API)::

    submit ─► refused                      (not allowed by devices:, journaled, counted)
           ─► deferred ─┐                  (min_interval not over; the latest wins)
           ─► sent ◄────┘ ─► acked         (the device confirmed every setting)
                          ─► rejected      (the device said no)
                          ─► retried…      (no answer within ack_timeout; the wait doubles)
                          ─► timed_out     (after `retries` retries: a command_failed alert)
                          ─► superseded    (a newer command for the device replaced it)

A device has at most one command outstanding: a new request merges the
settings still outstanding or deferred with its own (newer values win) and
replaces them, so an ``on_resolved`` "fan off" is never lost behind a retrying
"fan on", and nothing is ever sent twice with different meanings. Settings are
refused, never clamped (:mod:`gateway.actions.policy`). Every step is
journaled with the trace id of the reading that started it.

The states and their transitions are pure functions in
:mod:`gateway.actions.commands`; this module runs them: it keeps the timers,
publishes through the link, journals, counts and raises ``command_failed``.

Messages are built and acknowledgements recognised by the device's
convention (``devices:`` → ``convention:``, default ``outpost``:
``devices/{id}/set`` with ``{"id": …}``, answered on ``devices/{id}/ack``).
A device the gateway talks to itself (a Modbus device) is a
:class:`DirectDevice` instead: the command is handed to it, and it answers
by calling back; pacing, retries, supersession and the journal are the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

from devices import conventions
from devices.conventions import AckOutcome, AckTracker, Convention, PendingCommand
from devices.decoding import Message
from devices.model import InvalidReading
from gateway.actions import commands
from gateway.actions.alerts import system_alert
from gateway.actions.commands import (
    IDLE,
    CommandOutcome,
    Defer,
    DeviceCommands,
    Finished,
    Inflight,
    Origin,
    Pacing,
    Retry,
)
from gateway.actions.policy import CommandPolicy, Refused
from gateway.actions.sentences import describe
from gateway.config.schema import DeviceConfig
from gateway.journal import Journal
from gateway.logsetup import printable
from gateway.metrics import Metrics
from gateway.mqtt.link import MqttLink
from rules import Problem, RuleSet

log = logging.getLogger("outpost.commands")


Answer = Callable[[str, AckOutcome, str], None]
"""``answer(command_id, outcome, reason)``: what a direct device said about a command."""


class DirectDevice(Protocol):
    """A device commanded without MQTT (a Modbus device: :mod:`gateway.modbus.commands`)."""

    def describe(self) -> str:
        """Where commands go, for the journal (``modbus tcp 10.0.0.5:502 unit 1``)."""
        ...

    def send(self, command_id: str, settings: Mapping[str, Any], answer: Answer) -> None:
        """Start applying ``settings``; call ``answer`` when the device confirmed or refused
        (never, when it did not answer: the dispatcher's ack timeout and retries apply)."""
        ...


@dataclass
class _Device:
    name: str
    config: DeviceConfig
    convention: Convention | None  # None: a direct device
    pacing: Pacing
    state: DeviceCommands = IDLE
    direct: DirectDevice | None = None
    tracker: AckTracker | None = None  # recognises the answer to state.inflight
    ack_timer: asyncio.TimerHandle | None = None
    release_timer: asyncio.TimerHandle | None = None


AlertSink = Callable[[dict[str, Any]], None]
PointSink = Callable[[str, Mapping[str, str], Mapping[str, Any], int], None]


class CommandDispatcher:
    def __init__(
        self,
        devices: Mapping[str, DeviceConfig],
        *,
        link: MqttLink,
        journal: Journal,
        metrics: Metrics,
        on_alert: AlertSink,
        on_point: PointSink,
        source_id: str = "outpost",
        convention_for: Callable[[str, Mapping[str, Any]], Convention] = conventions.create,
        direct: Mapping[str, DirectDevice] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], int] = time.time_ns,
    ) -> None:
        self._policy = CommandPolicy(devices)
        self._link = link
        self._journal = journal
        self._metrics = metrics
        self._on_alert = on_alert
        self._on_point = on_point
        self._clock = clock
        self._wall = wall
        self._devices: dict[str, _Device] = {}
        direct = direct or {}
        for name, config in devices.items():
            options = {"src": source_id, **config.model_dump()}
            target = direct.get(name)
            self._devices[name] = _Device(
                name,
                config,
                None if target else convention_for(config.convention, options),
                commands.pacing(config.min_interval, config.ack_timeout, config.retries),
                direct=target,
            )

    def start(self) -> None:
        """Listen for acknowledgements; resume commands left unanswered by the last run."""
        for dev in self._devices.values():
            if dev.convention is None:
                continue
            try:
                filters = dev.convention.ack_subscriptions(dev.name)
            except InvalidReading as exc:
                log.error("device %s: %s", dev.name, exc)
                continue
            self._link.subscribe(filters, self._on_message)
        self._resume()

    # requests -------------------------------------------------------------------

    def submit(
        self, target: str, settings: Mapping[str, Any], origin: Origin
    ) -> tuple[CommandOutcome, str]:
        """Check and send (or defer) a command; returns the outcome and the command id/reason."""
        try:
            checked = self._policy.check(target, settings)
        except Refused as exc:
            self._metrics.commands.labels(CommandOutcome.REFUSED).inc()
            self._record(
                "command_refused",
                target,
                origin,
                {"set": dict(settings), "reason": exc.reason, "detail": str(exc)},
            )
            log.warning(
                "refused command to %s from %s: %s",
                printable(target, 120),
                printable(origin.rule or origin.source, 120),
                printable(exc),
            )
            return CommandOutcome.REFUSED, str(exc)
        dev = self._devices[target]
        dev.state, superseded, step = commands.submit(
            dev.state, dev.pacing, checked.settings, origin, self._clock()
        )
        self._finished(dev, superseded, {"superseded_by": "newer command"})
        if isinstance(step, Defer):
            if dev.release_timer is None:
                dev.release_timer = self._at(step.until, self._release, dev)
            self._metrics.commands.labels(CommandOutcome.DEFERRED).inc()
            self._record(
                "command_deferred",
                target,
                origin,
                {"set": dict(step.settings), "send_in_s": round(step.wait, 3)},
            )
            return CommandOutcome.DEFERRED, f"sent in {step.wait:.1f}s (min_interval)"
        if dev.release_timer is not None:  # this request took along what was deferred
            dev.release_timer.cancel()
            dev.release_timer = None
        try:
            return CommandOutcome.SENT, self._send(dev, step.settings, step.origin)
        except Refused as exc:  # the convention could not encode it (journaled in _send)
            return CommandOutcome.REFUSED, str(exc)

    def _release(self, dev: _Device) -> None:
        dev.release_timer = None
        dev.state, step = commands.release(dev.state)
        if step is not None:
            with contextlib.suppress(Refused):  # journaled in _send
                self._send(dev, step.settings, step.origin)

    def _send(
        self,
        dev: _Device,
        settings: Mapping[str, Any],
        origin: Origin,
        command_id: str | None = None,
    ) -> str:
        command_id = command_id or uuid.uuid4().hex[:16]
        settings = dict(settings)
        try:
            where = self._deliver(dev, command_id, settings)
        except InvalidReading as exc:
            self._metrics.commands.labels(CommandOutcome.REFUSED).inc()
            self._record(
                "command_refused",
                dev.name,
                origin,
                {"set": settings, "reason": exc.reason, "detail": str(exc)},
            )
            log.warning("refused command to %s from %s: %s", dev.name,
                        origin.rule or origin.source, exc)  # fmt: skip
            raise Refused(exc.reason, str(exc)) from None
        dev.state = commands.sent(
            dev.state, dev.pacing, command_id, settings, origin, self._clock()
        )
        if dev.convention is not None:
            pending = PendingCommand(dev.name, command_id, settings)
            dev.tracker = AckTracker(dev.convention, pending)
        self._arm(dev)
        self._metrics.commands.labels(CommandOutcome.SENT).inc()
        body = self._record(
            "command",
            dev.name,
            origin,
            {"id": command_id, "set": settings, "topic": where},
        )
        self._on_point(
            "outpost_commands",
            {"device": dev.name, "outcome": "sent", "rule": origin.rule or origin.source},
            {"id": command_id, "settings": _text(settings)},
            self._wall(),
        )
        log.info("%s", describe("command", body))
        return command_id

    def _deliver(self, dev: _Device, command_id: str, settings: Mapping[str, Any]) -> str:
        """Send one attempt of a command; where it went (a topic, or a direct device's link).

        Raises InvalidReading when the convention cannot express it."""
        if dev.direct is not None:
            dev.direct.send(command_id, settings, lambda cid, out, why: self._answer(
                dev, cid, out, why))  # fmt: skip
            return dev.direct.describe()
        assert dev.convention is not None
        messages = dev.convention.encode_command(dev.name, command_id, settings)
        for message in messages:
            self._link.publish(message.topic, message.payload, message.qos, message.retain)
        return messages[0].topic if messages else ""

    def rule_problems(self, ruleset: RuleSet) -> list[Problem]:
        """What the policy would refuse of the rules' commands (see CommandPolicy)."""
        return self._policy.rule_problems(ruleset)

    # answers --------------------------------------------------------------------

    def _on_message(self, topic: str, payload: bytes) -> None:
        message = Message(topic, payload, {}, self._wall())
        for dev in self._devices.values():
            command, tracker = dev.state.inflight, dev.tracker
            if command is None or tracker is None:
                continue
            outcome = tracker.feed(message)
            if outcome is not None:
                self._answer(dev, command.id, outcome, tracker.reason)

    def _answer(self, dev: _Device, command_id: str, outcome: AckOutcome, reason: str) -> None:
        """The device confirmed or refused ``command_id`` (stale answers change nothing)."""
        if outcome is AckOutcome.ACKED:
            dev.state, done = commands.acked(dev.state, command_id)
            self._finished(dev, done, {})
        else:
            dev.state, done = commands.rejected(dev.state, command_id)
            if done is not None:
                log.warning("%s rejected command %s: %s", dev.name, command_id, reason)
            self._finished(dev, done, {"reason": reason})

    def _timeout(self, dev: _Device, command_id: str, attempt: int) -> None:
        dev.ack_timer = None
        dev.state, step = commands.timed_out(
            dev.state, dev.pacing, command_id, attempt, self._clock()
        )
        if isinstance(step, Retry):
            command = step.command
            try:
                self._deliver(dev, command.id, command.settings)
            except InvalidReading as exc:  # what it was checked against changed (a rebirth)
                log.warning("cannot send command %s to %s again: %s", command.id, dev.name, exc)
                dev.state, done = commands.rejected(dev.state, command.id)
                self._finished(dev, done, {"reason": exc.reason, "detail": str(exc)})
                return
            self._arm(dev)
            self._metrics.commands.labels("retried").inc()
            self._record(
                "command_retry",
                dev.name,
                command.origin,
                {"id": command.id, "attempt": command.attempt, "set": command.settings},
            )
            log.info(
                "no answer from %s to command %s; retry %d of %d",
                dev.name,
                command.id,
                command.attempt,
                dev.pacing.retries,
            )
        elif step is not None:
            command = step.command
            log.error(
                "%s never acknowledged command %s (%s)",
                dev.name,
                command.id,
                _text(command.settings),
            )
            self._finished(dev, step, {"attempts": command.attempt + 1})

    def _finished(self, dev: _Device, done: Finished | None, extra: dict[str, Any]) -> None:
        """Journal, count and plot how a command ended; raise or resolve command_failed."""
        if done is None:
            return
        command = done.command
        dev.tracker = None
        self._arm(dev)
        self._metrics.commands.labels(done.outcome).inc()
        self._record(
            f"command_{done.outcome}",
            dev.name,
            command.origin,
            {"id": command.id, "set": command.settings, **extra},
        )
        self._on_point(
            "outpost_commands",
            {
                "device": dev.name,
                "outcome": str(done.outcome),
                "rule": command.origin.rule or command.origin.source,
            },
            {"id": command.id, "settings": _text(command.settings)},
            self._wall(),
        )
        if done.alert is not None:
            self._failed_alert(dev, command, firing=done.alert == "firing")

    def _failed_alert(self, dev: _Device, command: Inflight, *, firing: bool) -> None:
        message = (
            f"{dev.name} did not acknowledge {_text(command.settings)} "
            f"after {dev.pacing.retries} retries"
            if firing
            else f"{dev.name} acknowledges commands again"
        )
        self._on_alert(
            system_alert(
                rule="command_failed",
                device=dev.name,
                firing=firing,
                at_ns=self._wall(),
                severity="critical",
                value=None,
                message=message,
                labels={"command_id": command.id},
                trace_id=command.origin.trace_id,
            )
        )

    # timers ---------------------------------------------------------------------

    def _arm(self, dev: _Device) -> None:
        """Wait for the answer to the device's outstanding command (if any) until it is due."""
        if dev.ack_timer is not None:
            dev.ack_timer.cancel()
            dev.ack_timer = None
        command = dev.state.inflight
        if command is not None:
            dev.ack_timer = self._at(command.due, self._timeout, dev, command.id, command.attempt)

    def _at(self, when: float, callback: Callable[..., None], *args: Any) -> asyncio.TimerHandle:
        # call_later, not call_at: ``when`` is on self._clock, which need not be the loop's.
        delay = max(0.0, when - self._clock())
        return asyncio.get_running_loop().call_later(delay, callback, *args)

    # journal --------------------------------------------------------------------

    def _record(
        self, kind: str, device: str, origin: Origin, payload: dict[str, Any]
    ) -> dict[str, Any]:
        """Journal one step of a command; returns the entry as journaled."""
        body = {"device": device, "origin": origin.source, "rule": origin.rule, **payload}
        if origin.alert_device:
            body["alert_device"] = origin.alert_device
        self._journal.append(kind, body, rule=origin.rule, device=device, trace_id=origin.trace_id)
        return body

    def _resume(self) -> None:
        """Resend (same id) the commands the last run left without an outcome."""
        open_commands: dict[str, dict[str, Any]] = {}
        for entry in self._journal.entries(
            kinds=(
                "command",
                "command_acked",
                "command_rejected",
                "command_timed_out",
                "command_superseded",
            )
        ):
            if entry.device is None:
                continue
            if entry.kind == "command":
                open_commands[entry.device] = {**entry.payload, "trace_id": entry.trace_id}
            elif open_commands.get(entry.device, {}).get("id") == entry.payload.get("id"):
                del open_commands[entry.device]
        for entry in self._journal.entries(kinds=("alert",), rule="command_failed"):
            dev = self._devices.get(entry.device or "")
            if dev is not None:
                dev.state = replace(dev.state, failed=entry.payload.get("state") == "firing")
        for device, command in open_commands.items():
            dev = self._devices.get(device)
            if dev is None or not isinstance(command.get("set"), dict):
                continue
            origin = Origin(
                "journal",
                command.get("rule"),
                command.get("trace_id") or "",
                command.get("alert_device"),
            )
            log.info(
                "resuming command %s to %s left unanswered before the restart",
                command["id"],
                device,
            )
            with contextlib.suppress(Refused):  # journaled in _send
                self._send(dev, command["set"], origin, command_id=str(command["id"]))

    def state(self) -> list[dict[str, Any]]:
        """Outstanding and deferred commands per device (for the API and dashboard)."""
        out = []
        for dev in self._devices.values():
            command = dev.state.inflight
            out.append(
                {
                    "device": dev.name,
                    "convention": dev.config.convention,
                    "inflight": None
                    if command is None
                    else {"id": command.id, "set": command.settings, "attempt": command.attempt},
                    "deferred": dict(dev.state.deferred) or None,
                    "failed": dev.state.failed,
                }
            )
        return out


def _text(settings: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in settings.items())
