"""Simulated actuators: a fan, a heater and a pump that take outpost commands.

An actuator is a device (it implements ``Model``: it publishes its own state
on ``sensors/{id}`` like any sensor, so the loop shows in InfluxDB) that also
listens on ``devices/{id}/set`` and answers on ``devices/{id}/ack``
(DESIGN.md §5)::

    devices/fan-1/set  ← {"id": "c-17", "speed": 100}
    devices/fan-1/ack  → {"id": "c-17", "ok": true}
    devices/fan-1/ack  → {"id": "c-18", "ok": false, "error": "speed: 140 is outside 0..100"}

A command is checked whole before anything changes: one bad setting refuses
all of it (never clamped, as the gateway does not clamp either).

| kind     | settings                                              | publishes               |
|----------|-------------------------------------------------------|-------------------------|
| `fan`    | `speed` 0..100; `mode` `auto`/`manual` (accepted, no effect) | `speed`          |
| `heater` | `power` `"on"`/`"off"` (or true/false), or `level` 0..100 | `level`, `power`    |
| `pump`   | `power` `"on"`/`"off"` (or true/false), or `flow` 0..100  | `flow`, `power`     |

With a ``Greenhouse`` the level drives its physics from the command's
simulated time on; without one the actuator only acknowledges and reports.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from simulators.greenhouse import Greenhouse
from simulators.model import Number, Value
from simulators.payloads import check_topic_level

Kind = Literal["fan", "heater", "pump"]
# The setting that carries the level, per kind; also the published metric.
LEVEL_KEY: dict[str, str] = {"fan": "speed", "heater": "level", "pump": "flow"}
_POWER = {"on": 100.0, "off": 0.0, True: 100.0, False: 0.0}


class ActuatorSpec(BaseModel):
    """A scenario's ``actuators:`` entry."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    kind: Kind
    initial: float = Field(default=0.0, ge=0, le=100, description="level at start, %")

    @field_validator("id")
    @classmethod
    def _valid_id(cls, value: str) -> str:
        return check_topic_level(value)


class CommandError(ValueError):
    """A command the actuator refuses; the message goes into the ack's ``error``."""


class Actuator:
    """One simulated actuator (see the module docstring)."""

    def __init__(
        self, device: str, kind: Kind, greenhouse: Greenhouse | None = None, initial: float = 0.0
    ) -> None:
        self.device = device
        self.kind: Kind = kind
        self.level = float(initial)
        self.commands = 0  # accepted
        self.refused = 0
        self._greenhouse = greenhouse
        self._key = LEVEL_KEY[kind]
        if greenhouse is not None:
            greenhouse.set_level(kind, self.level, 0.0)

    @property
    def metrics(self) -> tuple[str, ...]:
        return (self._key,) if self.kind == "fan" else (self._key, "power")

    def next(self, t: float) -> dict[str, Value]:
        level: Number = int(self.level) if self.level.is_integer() else self.level
        if self.kind == "fan":
            return {"speed": level}
        return {self._key: level, "power": "on" if self.level > 0 else "off"}

    def command(self, payload: bytes, t: float) -> dict[str, Any]:
        """Apply the command in ``payload`` at simulated time ``t``; return the ack body."""
        command_id: Any = None
        try:
            body = json.loads(payload)
            if not isinstance(body, dict):
                raise CommandError("a command is a JSON object")
            command_id = body.get("id")
            if not isinstance(command_id, str) or not command_id:
                raise CommandError("missing command id")
            level = self._level_of({k: v for k, v in body.items() if k != "id"})
        except (CommandError, ValueError) as exc:  # JSONDecodeError is a ValueError
            self.refused += 1
            error = str(exc) if isinstance(exc, CommandError) else "payload is not JSON"
            return {"id": command_id, "ok": False, "error": error}
        if level is not None:
            self.level = level
            if self._greenhouse is not None:
                self._greenhouse.set_level(self.kind, level, t)
        self.commands += 1
        return {"id": command_id, "ok": True}

    def _level_of(self, settings: Mapping[str, Any]) -> float | None:
        if not settings:
            raise CommandError("nothing to set")
        allowed = {self._key, "mode"} if self.kind == "fan" else {self._key, "power"}
        unknown = sorted(set(settings) - allowed)
        if unknown:
            raise CommandError(
                f"unknown setting {unknown[0]!r} for a {self.kind} "
                f"(known: {', '.join(sorted(allowed))})"
            )
        if "mode" in settings and settings["mode"] not in ("auto", "manual"):
            raise CommandError(f"mode: {settings['mode']!r} is not 'auto' or 'manual'")
        if self._key in settings and "power" in settings:
            raise CommandError(f"give either power or {self._key}, not both")
        if "power" in settings:
            power = settings["power"]
            key = power.lower() if isinstance(power, str) else power
            if not isinstance(key, (str, bool)) or key not in _POWER:
                raise CommandError(f"power: {power!r} is not 'on' or 'off'")
            return _POWER[key]
        if self._key not in settings:
            return None  # only `mode`
        value = settings[self._key]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise CommandError(f"{self._key}: {value!r} is not a number")
        if not 0 <= value <= 100:
            raise CommandError(f"{self._key}: {value} is outside 0..100")
        return float(value)


def encode_ack(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()
