"""The one record that flows through the pipeline: a decoded sensor reading.

Decoders (``gateway.decoders``, ``devices``) produce a ``Reading``; the rules
engine, the InfluxDB writer, the journal and the dashboard consume it. Nothing
past a decoder handles readings as dicts.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

Value = float | bool | str

MAX_DEVICE_ID = 128


@dataclass(frozen=True, slots=True)
class Reading:
    """One value of one metric of one device at one instant.

    ``value`` is a float for every number (a sensor that sends ``40`` then
    ``40.5`` must land in one InfluxDB field type), a bool for switches, a str
    for text states. ``ts`` is nanoseconds since the epoch, UTC. ``tags`` are
    extra InfluxDB tags (from the input config or the device). ``topic`` is the
    MQTT topic it came from; ``trace_id`` follows it into alerts and commands.
    """

    device: str
    metric: str
    value: Value
    ts: int
    unit: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)
    topic: str = ""
    trace_id: str = ""


class InvalidReading(ValueError):
    """A payload decoded, but what it says cannot be a reading.

    ``reason`` is a short stable token (``empty_device``, ``non_finite`` …)
    used as the dead-letter reason and the metrics label; the message explains.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


_SURROGATE = re.compile("[\ud800-\udfff]")

# What a name may not contain: control characters (C0, DEL, C1 — newlines among them),
# the Unicode line and paragraph separators, and the bidirectional overrides and
# isolates that make a log line or a dashboard show text in another order than it is.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def check_text(kind: str, text: str) -> str:
    """Refuse text that is not Unicode a UTF-8 encoder can write: a lone surrogate.

    Decoded UTF-8 never holds one, but JSON can spell one (``"\\ud800"``); InfluxDB,
    MQTT and every log line would then fail to encode it.
    """
    if not text.isascii() and _SURROGATE.search(text):
        raise InvalidReading("invalid_text", f"{kind} {text[:40]!r} has a lone surrogate")
    return text


def check_identifier(kind: str, text: str) -> None:
    """Refuse names InfluxDB line protocol cannot carry: empty, newline, control chars."""
    if not text:
        raise InvalidReading(f"empty_{kind}", f"empty {kind}")
    check_text(kind, text)
    if _CONTROL.search(text):
        raise InvalidReading(f"bad_{kind}", f"{kind} {text!r} contains a control character")


def check_value(value: object) -> Value:
    """Normalise a decoded scalar: ints become floats, non-finite numbers are refused."""
    if isinstance(value, (bool, str)):
        if isinstance(value, str):
            check_text("string value", value)
            if "\n" in value or "\r" in value:
                # A newline would end the line-protocol line; refuse rather than mangle.
                raise InvalidReading("bad_value", "string value contains a newline")
        return value
    if isinstance(value, (int, float)):
        try:
            number = float(value)
        except OverflowError:
            raise InvalidReading("non_finite", f"number too large: {str(value)[:40]}…") from None
        if not math.isfinite(number):
            raise InvalidReading("non_finite", f"non-finite number {number}")
        return number
    raise InvalidReading("bad_value", f"unsupported value type {type(value).__name__}")


def check_device_id(device: str) -> str:
    """Refuse a device id that could change a topic's shape or break line protocol."""
    if not isinstance(device, str) or not device:
        raise InvalidReading("bad_device", "empty device id")
    check_text("device id", device)
    if len(device) > MAX_DEVICE_ID:
        raise InvalidReading("bad_device", f"device id longer than {MAX_DEVICE_ID} characters")
    for ch in ("+", "#", "/"):
        if ch in device:
            raise InvalidReading(
                "bad_device",
                f"device id {device[:40]!r} contains {ch!r} and cannot be part of a topic",
            )
    if _CONTROL.search(device):
        raise InvalidReading("bad_device", f"device id {device!r} contains a control character")
    return device


def check_topic_level(kind: str, text: str) -> str:
    """A command key that becomes one topic level (Tasmota command, ESPHome object id)."""
    check_text(kind, text)
    if not text or "+" in text or "#" in text or "/" in text or _CONTROL.search(text):
        raise InvalidReading(f"bad_{kind}", f"{kind} {text!r} cannot be a topic level")
    return text
