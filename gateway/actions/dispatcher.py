"""Device commands with ids, acknowledgements, retries, pacing and supersession.

Lifecycle of a command request (from a rule's action or the API)::

    submit ─► refused                      (not allowed by devices:, journaled, counted)
           ─► deferred ─┐                  (min_interval not over; the latest wins)
           ─► sent ◄────┘ ─► acked         (the device confirmed every setting)
                          ─► rejected      (the device said no)
                          ─► retried…      (no answer within ack_timeout; backoff doubles)
                          ─► timed_out     (after `retries` retries: a command_failed alert)
                          ─► superseded    (a newer command for the device replaced it)

A device has at most one command outstanding: a new request merges the
settings still outstanding or deferred with its own (newer values win) and
replaces them, so an ``on_resolved`` "fan off" is never lost behind a retrying
"fan on", and nothing is ever sent twice with different meanings. Settings are
refused, never clamped (:mod:`gateway.actions.policy`). Every step is
journaled with the trace id of the reading that started it.

Messages are built and acknowledgements recognised by the device's
convention (``devices:`` → ``convention:``, default ``outpost``:
``devices/{id}/set`` with ``{"id": …}``, answered on ``devices/{id}/ack``).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from devices import conventions
from devices.conventions import AckOutcome, AckTracker, Convention, PendingCommand
from devices.decoding import Message
from devices.model import InvalidReading
from gateway.actions.policy import CommandPolicy, Refused
from gateway.config.schema import DeviceConfig
from gateway.journal import Journal
from gateway.metrics import Metrics
from gateway.mqtt.link import MqttLink
from rules import rfc3339

log = logging.getLogger("outpost.commands")

MAX_BACKOFF = 60.0


class Outcome(StrEnum):
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


@dataclass
class _Inflight:
    id: str
    settings: dict[str, Any]
    origin: Origin
    tracker: AckTracker
    attempt: int = 0
    timer: asyncio.TimerHandle | None = None


@dataclass
class _Device:
    name: str
    config: DeviceConfig
    convention: Convention
    inflight: _Inflight | None = None
    deferred: dict[str, Any] = field(default_factory=dict)
    deferred_origin: Origin | None = None
    deferred_timer: asyncio.TimerHandle | None = None
    last_sent: float = float("-inf")
    failed: bool = False  # a command_failed alert is firing for this device


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
        for name, config in devices.items():
            options = {"src": source_id, **config.model_dump()}
            self._devices[name] = _Device(
                name, config, conventions.create(config.convention, options)
            )

    def start(self) -> None:
        """Listen for acknowledgements; resume commands left unanswered by the last run."""
        for dev in self._devices.values():
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
    ) -> tuple[Outcome, str]:
        """Check and send (or defer) a command; returns the outcome and the command id/reason."""
        try:
            checked = self._policy.check(target, settings)
        except Refused as exc:
            self._metrics.commands.labels(Outcome.REFUSED).inc()
            self._record(
                "command_refused",
                target,
                origin,
                {"set": dict(settings), "reason": exc.reason, "detail": str(exc)},
            )
            log.warning(
                "refused command to %s from %s: %s", target, origin.rule or origin.source, exc
            )
            return Outcome.REFUSED, str(exc)
        dev = self._devices[target]
        desired: dict[str, Any] = {}
        if dev.inflight is not None:
            old = dev.inflight
            desired.update(old.settings)
            self._finish(dev, Outcome.SUPERSEDED, {"superseded_by": "newer command"})
        if dev.deferred:
            desired.update(dev.deferred)
        desired.update(checked.settings)
        wait = dev.last_sent + dev.config.min_interval - self._clock()
        if wait > 0:
            dev.deferred = desired
            dev.deferred_origin = origin
            if dev.deferred_timer is None:
                dev.deferred_timer = asyncio.get_running_loop().call_later(
                    wait, self._send_deferred, dev
                )
            self._metrics.commands.labels(Outcome.DEFERRED).inc()
            self._record(
                "command_deferred", target, origin, {"set": desired, "send_in_s": round(wait, 3)}
            )
            return Outcome.DEFERRED, f"sent in {wait:.1f}s (min_interval)"
        dev.deferred = {}
        return Outcome.SENT, self._send(dev, desired, origin)

    def _send_deferred(self, dev: _Device) -> None:
        dev.deferred_timer = None
        if not dev.deferred or dev.deferred_origin is None:
            return
        settings, origin = dev.deferred, dev.deferred_origin
        dev.deferred, dev.deferred_origin = {}, None
        self._send(dev, settings, origin)

    def _send(
        self, dev: _Device, settings: dict[str, Any], origin: Origin, command_id: str | None = None
    ) -> str:
        command_id = command_id or uuid.uuid4().hex[:16]
        try:
            messages = dev.convention.encode_command(dev.name, command_id, settings)
        except InvalidReading as exc:
            self._metrics.commands.labels(Outcome.REFUSED).inc()
            self._record(
                "command_refused",
                dev.name,
                origin,
                {"set": settings, "reason": exc.reason, "detail": str(exc)},
            )
            return command_id
        for message in messages:
            self._link.publish(message.topic, message.payload, message.qos, message.retain)
        dev.last_sent = self._clock()
        tracker = AckTracker(dev.convention, PendingCommand(dev.name, command_id, settings))
        inflight = _Inflight(command_id, dict(settings), origin, tracker)
        dev.inflight = inflight
        inflight.timer = asyncio.get_running_loop().call_later(
            dev.config.ack_timeout, self._timeout, dev, inflight
        )
        self._metrics.commands.labels(Outcome.SENT).inc()
        self._record(
            "command",
            dev.name,
            origin,
            {"id": command_id, "set": settings, "topic": messages[0].topic if messages else ""},
        )
        self._on_point(
            "outpost_commands",
            {"device": dev.name, "outcome": "sent", "rule": origin.rule or origin.source},
            {"id": command_id, "settings": _text(settings)},
            self._wall(),
        )
        log.info(
            "command %s to %s: %s (%s)",
            command_id,
            dev.name,
            settings,
            f"rule {origin.rule}" if origin.rule else origin.source,
        )
        return command_id

    # answers --------------------------------------------------------------------

    def _on_message(self, topic: str, payload: bytes) -> None:
        message = Message(topic, payload, {}, self._wall())
        for dev in self._devices.values():
            inflight = dev.inflight
            if inflight is None:
                continue
            outcome = inflight.tracker.feed(message)
            if outcome is AckOutcome.ACKED:
                self._finish(dev, Outcome.ACKED, {})
                if dev.failed:
                    dev.failed = False
                    self._failed_alert(dev, inflight, "resolved")
            elif outcome is AckOutcome.REJECTED:
                reason = inflight.tracker.reason
                log.warning("%s rejected command %s: %s", dev.name, inflight.id, reason)
                self._finish(dev, Outcome.REJECTED, {"reason": reason})

    def _timeout(self, dev: _Device, inflight: _Inflight) -> None:
        if dev.inflight is not inflight:
            return
        if inflight.attempt < dev.config.retries:
            inflight.attempt += 1
            for message in dev.convention.encode_command(dev.name, inflight.id, inflight.settings):
                self._link.publish(message.topic, message.payload, message.qos, message.retain)
            delay = min(MAX_BACKOFF, dev.config.ack_timeout * 2**inflight.attempt)
            inflight.timer = asyncio.get_running_loop().call_later(
                delay, self._timeout, dev, inflight
            )
            self._metrics.commands.labels("retried").inc()
            self._record(
                "command_retry",
                dev.name,
                inflight.origin,
                {"id": inflight.id, "attempt": inflight.attempt, "set": inflight.settings},
            )
            log.info(
                "no answer from %s to command %s; retry %d of %d",
                dev.name,
                inflight.id,
                inflight.attempt,
                dev.config.retries,
            )
            return
        self._finish(dev, Outcome.TIMED_OUT, {"attempts": inflight.attempt + 1})
        log.error("%s never acknowledged command %s %s", dev.name, inflight.id, inflight.settings)
        dev.failed = True
        self._failed_alert(dev, inflight, "firing")

    def _finish(self, dev: _Device, outcome: Outcome, extra: dict[str, Any]) -> None:
        inflight = dev.inflight
        if inflight is None:
            return
        if inflight.timer is not None:
            inflight.timer.cancel()
        dev.inflight = None
        self._metrics.commands.labels(outcome).inc()
        self._record(
            f"command_{outcome}",
            dev.name,
            inflight.origin,
            {"id": inflight.id, "set": inflight.settings, **extra},
        )
        self._on_point(
            "outpost_commands",
            {
                "device": dev.name,
                "outcome": str(outcome),
                "rule": inflight.origin.rule or inflight.origin.source,
            },
            {"id": inflight.id, "settings": _text(inflight.settings)},
            self._wall(),
        )

    def _failed_alert(self, dev: _Device, inflight: _Inflight, state: str) -> None:
        now = self._wall()
        at = rfc3339(now)
        settings = ", ".join(f"{k}={v}" for k, v in inflight.settings.items())
        message = (
            f"{dev.name} did not acknowledge {settings} after {dev.config.retries} retries"
            if state == "firing"
            else f"{dev.name} acknowledges commands again"
        )
        self._on_alert(
            {
                "rule": "command_failed",
                "device": dev.name,
                "state": state,
                "at": at,
                "severity": "critical",
                "value": None,
                "message": message,
                "labels": {"command_id": inflight.id},
                "active_at": at if state == "firing" else None,
                "fired_at": at if state == "firing" else None,
                "resolved_at": at if state == "resolved" else None,
                "trace_id": inflight.origin.trace_id or None,
            }
        )

    # journal --------------------------------------------------------------------

    def _record(self, kind: str, device: str, origin: Origin, payload: dict[str, Any]) -> None:
        body = {"device": device, "origin": origin.source, "rule": origin.rule, **payload}
        self._journal.append(kind, body, rule=origin.rule, device=device, trace_id=origin.trace_id)

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
                dev.failed = entry.payload.get("state") == "firing"
        for device, command in open_commands.items():
            dev = self._devices.get(device)
            if dev is None or not isinstance(command.get("set"), dict):
                continue
            origin = Origin("journal", command.get("rule"), command.get("trace_id") or "")
            log.info(
                "resuming command %s to %s left unanswered before the restart",
                command["id"],
                device,
            )
            self._send(dev, command["set"], origin, command_id=str(command["id"]))

    def state(self) -> list[dict[str, Any]]:
        """Outstanding and deferred commands per device (for the API and dashboard)."""
        out = []
        for dev in self._devices.values():
            out.append(
                {
                    "device": dev.name,
                    "convention": dev.config.convention,
                    "inflight": None
                    if dev.inflight is None
                    else {
                        "id": dev.inflight.id,
                        "set": dev.inflight.settings,
                        "attempt": dev.inflight.attempt,
                    },
                    "deferred": dev.deferred or None,
                    "failed": dev.failed,
                }
            )
        return out


def _text(settings: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in settings.items())
