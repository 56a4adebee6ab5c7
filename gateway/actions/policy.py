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

The same policy checks the rules before they run (:meth:`CommandPolicy.rule_problems`):
a rule that commands a named device it would refuse is an error in the rule file,
at start, in ``outpost config check`` and on reload, not a refusal at 3 a.m.
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
from rules import Problem, RuleSet


class Refused(ValueError):
    """A command that may not be sent; ``reason`` is a short stable token for metrics."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _show(value: Any) -> str:
    """A value in a message as it is written in YAML or JSON (``"auto"``, ``100``, ``true``)."""
    return json.dumps(value, ensure_ascii=False) if isinstance(value, (str, bool)) else f"{value}"


def _check_value(key: str, value: Any, spec: CommandSpec) -> Any:
    kind = spec.type
    shown = _show(value)
    if kind == "bool":
        if not isinstance(value, bool):
            raise Refused("bad_value", f"{key}: {shown} is not true/false")
    elif kind in ("int", "float"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise Refused("bad_value", f"{key}: {shown} is not a number")
        if not math.isfinite(value):
            raise Refused("bad_value", f"{key}: {shown} is not finite")
        if kind == "int":
            if value != int(value):
                raise Refused("bad_value", f"{key}: {shown} is not a whole number")
            value = int(value)
    elif kind == "str" and not isinstance(value, str):
        raise Refused("bad_value", f"{key}: {shown} is not text")
    if spec.min is not None and isinstance(value, (int, float)) and value < spec.min:
        raise Refused("out_of_bounds", f"{key}: {shown} is below the minimum {spec.min:g}")
    if spec.max is not None and isinstance(value, (int, float)) and value > spec.max:
        raise Refused("out_of_bounds", f"{key}: {shown} is above the maximum {spec.max:g}")
    step = spec.step
    if step is not None and isinstance(value, (int, float)) and not _multiple(value, step):
        raise Refused("bad_value", f"{key}: {shown} is not a multiple of {step:g}")
    if spec.enum is not None and value not in spec.enum:
        allowed = ", ".join(map(_show, spec.enum))
        raise Refused("not_allowed", f"{key}: {shown} is not one of {allowed}")
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
        self.device(device)
        if not settings:
            raise Refused("empty", "a command needs at least one setting")
        checked = {key: self.setting(device, key, value) for key, value in settings.items()}
        return Command(uuid.uuid4().hex[:16], device, checked)

    def device(self, device: str) -> DeviceConfig:
        """The config of a device that may be commanded, or :class:`Refused`."""
        try:
            check_device_id(device)
        except InvalidReading as exc:
            raise Refused(exc.reason, str(exc)) from None
        config = self._devices.get(device)
        if config is None:
            raise Refused("unknown_device", f"device {device} is not listed under devices:")
        return config

    def setting(self, device: str, key: str, value: Any) -> Any:
        """``value`` checked (and normalised) for command ``key`` of a listed ``device``."""
        config = self.device(device)
        spec = config.commands.get(key)
        if spec is None:
            raise Refused(
                "unknown_command",
                f"{key} is not among the commands of {device} "
                f"({', '.join(config.commands) or 'none'})",
            )
        return _check_value(key, value, spec)

    def rule_problems(self, ruleset: RuleSet) -> list[Problem]:
        """Every setting the rules' commands to a named device would have refused, at its
        line; a command to a templated device (``{device}``) is checked when it is sent."""
        problems = []
        for rule in ruleset.rules:
            for action in (*rule.actions, *rule.on_resolved):
                if any(name is not None for _, name, _, _ in action.device.parts):
                    continue
                target = "".join(literal for literal, _, _, _ in action.device.parts)
                where = f"rule {rule.name}: command to {target}"
                try:
                    self.device(target)
                except Refused as exc:
                    problems.append(Problem(action.mark, f"{where}: {exc}"))
                    continue
                marks = action.setting_marks or (action.mark,) * len(action.settings)
                for (key, value), mark in zip(action.settings, marks, strict=True):
                    try:
                        self.setting(target, key, value)
                    except Refused as exc:
                        problems.append(Problem(mark, f"{where}: {exc}"))
        return problems
