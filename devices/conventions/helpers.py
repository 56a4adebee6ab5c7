"""Decoding helpers shared by the conventions: JSON and text payloads, names, values, topics.

Pure functions (and :class:`ReadingBuilder`) that the convention modules use to
turn payloads into readings the same way: JSON without ``NaN``/``Infinity``,
nested objects flattened to ``a_b`` metric names, ``"ON"``/``"OFF"`` to bools,
readings built with their device id and metric names checked. The contract they serve is in
:mod:`devices.conventions.base`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from devices.decoding import DecodeError, Message, load_json
from devices.model import (
    InvalidReading,
    Reading,
    Value,
    check_device_id,
    check_identifier,
    check_value,
)


def parse_json(payload: bytes) -> Any:
    """The payload as JSON, read as :func:`devices.decoding.load_json` reads every payload."""
    return load_json(payload)


def parse_json_object(payload: bytes) -> dict[str, Any]:
    data = parse_json(payload)
    if not isinstance(data, dict):
        raise DecodeError("not_object", f"expected a JSON object, got {type(data).__name__}")
    return data


def text_of(payload: bytes) -> str:
    try:
        return payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise DecodeError("bad_utf8", "payload is not UTF-8") from None


_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def snake(name: str) -> str:
    """``DewPoint`` → ``dew_point``, ``POWER1`` → ``power1``, ``RSSI`` → ``rssi``."""
    return _CAMEL.sub("_", name).lower()


def flatten(
    data: Mapping[str, Any], prefix: str = "", skip: Iterable[str] = ()
) -> Iterator[tuple[str, Any]]:
    """Scalar leaves of a JSON object, nested keys joined with ``_`` (DESIGN §4).

    Lists and nulls are skipped: a list is no scalar reading, and ``null`` is a
    device saying "unknown".
    """
    skipped = set(skip)
    for key, value in data.items():
        if key in skipped:
            continue
        name = f"{prefix}_{key}" if prefix else key
        if isinstance(value, dict):
            yield from flatten(value, name)
        elif value is None or isinstance(value, list):
            continue
        else:
            yield name, value


def scalar_from_text(text: str) -> Value:
    """A plain payload: a number, ``true``/``false``, or the text itself."""
    lowered = text.lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    try:
        number = float(text)
    except ValueError:
        return text
    if not math.isfinite(number):
        raise DecodeError("non_finite", f"non-finite number {text!r}")
    return number


def on_off(value: Any) -> Any:
    """``"ON"``/``"OFF"`` (any case) → bool; anything else unchanged."""
    if isinstance(value, str):
        upper = value.upper()
        if upper == "ON":
            return True
        if upper == "OFF":
            return False
    return value


def same_value(requested: Any, reported: Any) -> bool:
    """Does a state echo report the value a command asked for?

    Bools match ``ON``/``OFF``/``true``/``false``; numbers compare as floats;
    strings case-insensitively; a requested object (a Zigbee color) is
    confirmed by any report of that key, as devices answer in another color space.
    """
    if isinstance(requested, Mapping):
        return reported is not None
    if isinstance(requested, str) and requested.upper() == "TOGGLE":
        return reported is not None
    if isinstance(requested, bool) or isinstance(reported, bool):
        return _as_bool(requested) is not None and _as_bool(requested) == _as_bool(reported)
    if isinstance(requested, (int, float)) or isinstance(reported, (int, float)):
        a, b = _as_float(requested), _as_float(reported)
        return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(requested, str) and isinstance(reported, str):
        return requested.strip().lower() == reported.strip().lower()
    return False


def _as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return {"on": True, "true": True, "off": False, "false": False}.get(value.strip().lower())
    return None


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


@dataclass(slots=True)
class ReadingBuilder:
    """Builds the readings of one message: same device, topic, time and base tags."""

    device: str
    message: Message
    ts: int = 0
    readings: list[Reading] = field(default_factory=list)
    skipped: list[InvalidReading] = field(default_factory=list)

    def __post_init__(self) -> None:
        check_device_id(self.device)
        if not self.ts:
            self.ts = self.message.received_ns

    def add(
        self, metric: str, value: Any, unit: str = "", tags: Mapping[str, str] | None = None
    ) -> None:
        check_identifier("metric", metric)
        merged = dict(self.message.tags)
        if tags:
            merged.update(tags)
        self.readings.append(
            Reading(
                device=self.device,
                metric=metric,
                value=check_value(value),
                ts=self.ts,
                unit=unit,
                tags=merged,
                topic=self.message.topic,
            )
        )

    def add_lenient(
        self, metric: str, value: Any, unit: str = "", tags: Mapping[str, str] | None = None
    ) -> None:
        """Like :meth:`add`, but one odd field does not cost the message its other readings."""
        try:
            self.add(metric, value, unit, tags)
        except InvalidReading as exc:
            self.skipped.append(exc)

    def result(self) -> list[Reading]:
        """The readings; if every field was refused, the first refusal is the message's error."""
        if not self.readings and self.skipped:
            raise self.skipped[0]
        return self.readings


def option(options: Mapping[str, Any], key: str, default: str) -> str:
    value = options.get(key, default)
    if not isinstance(value, str):
        raise ValueError(f"option {key!r} must be a string")
    return value.strip("/") if key in ("base", "prefix") else value


def base_topic(options: Mapping[str, Any], default: str) -> str:
    """The topic levels before the device id.

    Option ``base`` if given; else, for an ``inputs:`` entry, the literal levels of
    its ``topic`` before the first ``{placeholder}``, ``+`` or ``#``
    (``zb/{device}`` → ``zb``); else the convention's default.
    """
    if "base" in options:
        return option(options, "base", default)
    template = options.get("topic")
    if isinstance(template, str) and template:
        literal: list[str] = []
        for level in template.split("/"):
            if "{" in level or level in ("+", "#"):
                return "/".join(literal)
            literal.append(level)
    return default


def json_bytes(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
