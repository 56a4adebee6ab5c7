"""What the engine emits: alert events (DESIGN §5 payload) and command requests.

Both carry everything a consumer needs (event-carried state): the gateway
publishes an :class:`AlertEvent` as ``to_json()`` on
``outpost/alerts/{rule}/{device}`` and turns a :class:`CommandRequest` into a
checked device command. Times stay ``int`` ns inside the engine and become
RFC 3339 UTC strings with milliseconds only at the edge, because JSON numbers
cannot carry nanoseconds safely.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rules.model import Setting, Value
from rules.state import AlertState

ALERT_FIELDS = (
    "rule",
    "device",
    "state",
    "at",
    "severity",
    "value",
    "message",
    "labels",
    "active_at",
    "fired_at",
    "resolved_at",
    "trace_id",
)


def rfc3339(ns: int | None) -> str | None:
    """``1795755841123456789`` → ``"2026-11-27T…:01.123Z"`` (truncated to ms); None stays None."""
    if ns is None:
        return None
    seconds, rest = divmod(ns, 1_000_000_000)
    stamp = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{rest // 1_000_000:03d}Z"


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """One transition of one (rule, device) alert, or a repeat notification."""

    rule: str
    device: str
    state: AlertState
    at: int
    severity: str
    value: Value | None
    message: str
    labels: Mapping[str, str]
    active_at: int | None
    fired_at: int | None
    resolved_at: int | None
    trace_id: str = ""
    metric: str = ""  # not in the payload: which series the rule matched
    repeat: bool = False  # not in the payload: a re-notification of a firing alert

    def to_dict(self) -> dict[str, Any]:
        """Exactly the §5 payload fields, times as RFC 3339 strings."""
        return {
            "rule": self.rule,
            "device": self.device,
            "state": self.state.value,
            "at": rfc3339(self.at),
            "severity": self.severity,
            "value": self.value,
            "message": self.message,
            "labels": dict(self.labels),
            "active_at": rfc3339(self.active_at),
            "fired_at": rfc3339(self.fired_at),
            "resolved_at": rfc3339(self.resolved_at),
            "trace_id": self.trace_id or None,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))

    @property
    def topic(self) -> str:
        return f"outpost/alerts/{self.rule}/{self.device}"


@dataclass(frozen=True, slots=True)
class CommandRequest:
    """A rule asks for ``settings`` on ``target`` (checked against ``devices:`` by the gateway).

    ``device`` is the alert's device, ``target`` the device to command;
    ``trigger`` says whether the alert fired or resolved.
    """

    rule: str
    device: str
    target: str
    settings: Mapping[str, Setting]
    trigger: AlertState
    at: int
    trace_id: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "device": self.device,
            "target": self.target,
            "set": dict(self.settings),
            "trigger": self.trigger.value,
            "at": rfc3339(self.at),
            "trace_id": self.trace_id or None,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))


Output = AlertEvent | CommandRequest


def alert_event_schema() -> dict[str, Any]:
    """JSON Schema (2020-12) of the alert event payload."""
    time = {
        "type": "string",
        "format": "date-time",
        "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$",
    }
    nullable_time = {"anyOf": [time, {"type": "null"}]}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Outpost alert event",
        "type": "object",
        "additionalProperties": False,
        "required": list(ALERT_FIELDS),
        "properties": {
            "rule": {"type": "string"},
            "device": {"type": "string"},
            "state": {"enum": [s.value for s in AlertState]},
            "at": time,
            "severity": {"enum": ["info", "warning", "critical"]},
            "value": {"type": ["number", "boolean", "string", "null"]},
            "message": {"type": "string"},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "active_at": nullable_time,
            "fired_at": nullable_time,
            "resolved_at": nullable_time,
            "trace_id": {"type": ["string", "null"]},
        },
    }
