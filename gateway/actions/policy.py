"""Which commands may reach which device: the ``devices:`` section as a policy.

Only devices listed under ``devices:`` may be commanded, only with the keys
listed under their ``commands:``, and only with values of the declared type,
within ``min``/``max``, in whole ``step``s, or inside ``enum``. (A ``modbus:``
device's commands are its writable registers: :mod:`gateway.modbus.commands`
writes their entries.) A value out of bounds is refused,
never clamped: a clamped "heater 100" is not what the rule author asked for.
A device id is held to :func:`devices.model.check_device_id` before any topic is
built, the same rule the decoders and the conventions apply: an id that could
change the topic (``+ # /``, control characters) or is longer than any decoder
accepts is refused as ``bad_device``.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from devices.model import InvalidReading, check_device_id
from gateway.config.schema import CommandSpec, DeviceConfig


class Refused(ValueError):
    """A command that may not be sent; ``reason`` is a short stable token for metrics."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _check_value(key: str, value: Any, spec: CommandSpec) -> Any:
    kind = spec.type
    if kind == "bool":
        if not isinstance(value, bool):
            raise Refused("bad_value", f"{key}: {value!r} is not true/false")
    elif kind in ("int", "float"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise Refused("bad_value", f"{key}: {value!r} is not a number")
        if not math.isfinite(value):
            raise Refused("bad_value", f"{key}: {value!r} is not finite")
        if kind == "int":
            if value != int(value):
                raise Refused("bad_value", f"{key}: {value!r} is not a whole number")
            value = int(value)
    elif kind == "str" and not isinstance(value, str):
        raise Refused("bad_value", f"{key}: {value!r} is not text")
    if spec.min is not None and isinstance(value, (int, float)) and value < spec.min:
        raise Refused("out_of_bounds", f"{key}: {value!r} is below the minimum {spec.min:g}")
    if spec.max is not None and isinstance(value, (int, float)) and value > spec.max:
        raise Refused("out_of_bounds", f"{key}: {value!r} is above the maximum {spec.max:g}")
    step = spec.step
    if step is not None and isinstance(value, (int, float)) and not _multiple(value, step):
        raise Refused("bad_value", f"{key}: {value!r} is not a multiple of {step:g}")
    if spec.enum is not None and value not in spec.enum:
        allowed = ", ".join(map(repr, spec.enum))
        raise Refused("not_allowed", f"{key}: {value!r} is not one of {allowed}")
    return value


def _multiple(value: float, step: float) -> bool:
    steps = value / step
    return abs(steps - round(steps)) <= 1e-9 * max(1.0, abs(steps))


@dataclass(frozen=True, slots=True)
class Command:
    """A checked command, ready to publish in the outpost convention."""

    id: str
    device: str
    settings: Mapping[str, Any]

    @property
    def topic(self) -> str:
        return f"devices/{self.device}/set"

    def payload(self) -> bytes:
        return json.dumps({"id": self.id, **self.settings}, ensure_ascii=False).encode()


class CommandPolicy:
    def __init__(self, devices: Mapping[str, DeviceConfig]) -> None:
        self._devices = dict(devices)

    def check(self, device: str, settings: Mapping[str, Any]) -> Command:
        """A :class:`Command` with a fresh id, or :class:`Refused` saying why not."""
        try:
            check_device_id(device)
        except InvalidReading as exc:
            raise Refused(exc.reason, str(exc)) from None
        config = self._devices.get(device)
        if config is None:
            raise Refused("unknown_device", f"device {device!r} is not listed under devices:")
        if not settings:
            raise Refused("empty", "a command needs at least one setting")
        checked = {}
        for key, value in settings.items():
            spec = config.commands.get(key)
            if spec is None:
                raise Refused(
                    "unknown_command",
                    f"{device}: {key!r} is not among its commands "
                    f"({', '.join(config.commands) or 'none'})",
                )
            checked[key] = _check_value(key, value, spec)
        return Command(uuid.uuid4().hex[:16], device, checked)
