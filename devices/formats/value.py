"""``format: value`` — the payload is one number, boolean or string.

``21.5`` and ``40`` are numbers (stored as floats), ``true``/``false`` are
booleans, ``"on"`` (JSON string) and bare text such as ``on`` are strings.
``nan``/``inf`` are refused: InfluxDB cannot store them and a rule cannot
compare them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from devices.decoding import DecodeError, Decoder, Message
from devices.formats.common import merged_tags, reading_device
from devices.formats.registry import register
from devices.model import Reading, check_identifier, check_text

_BOOLS = {"true": True, "false": False}


def parse_scalar(text: str) -> float | bool | str:
    """The value a one-value payload stands for."""
    if not text:
        raise DecodeError("empty_payload", "empty payload")
    low = text.lower()
    if low in _BOOLS:
        return _BOOLS[low]
    first = text[0]
    if first.isdigit() or first in "-+.":
        try:
            number = float(text)
        except ValueError:
            pass
        else:
            if not math.isfinite(number):
                raise DecodeError("non_finite", f"non-finite number {text[:40]!r}")
            return number
    if low in ("nan", "inf", "infinity", "+inf", "-inf", "-infinity"):
        raise DecodeError("non_finite", f"non-finite number {text[:40]!r}")
    if first == '"':
        try:
            decoded = json.loads(text)
        except ValueError:
            raise DecodeError("bad_value", "unterminated quoted string") from None
        if not isinstance(decoded, str):
            raise DecodeError("bad_value", "quoted payload is not a string")
        text = check_text("value", decoded)  # "\ud800" spells a lone surrogate
    if "\n" in text or "\r" in text:
        raise DecodeError("bad_value", "a value payload must be one line")
    return text


class ValueDecoder:
    def __init__(self, options: Mapping[str, Any]) -> None:
        self._metric = options.get("metric")
        self._device = options.get("device")
        self._tags: Mapping[str, str] = options.get("tags") or {}

    def decode(self, message: Message) -> list[Reading]:
        try:
            text = message.payload.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise DecodeError("bad_utf8", "payload is not UTF-8") from None
        value = parse_scalar(text)
        fields = message.fields
        device = reading_device(fields.get("device") or self._device or "")
        metric = fields.get("metric") or self._metric or ""
        check_identifier("metric", metric)
        return [
            Reading(
                device=device,
                metric=metric,
                value=value,
                ts=message.received_ns,
                tags=merged_tags(self._tags, message.tags),
                topic=message.topic,
                trace_id=message.trace_id,
            )
        ]


def _factory(options: Mapping[str, Any]) -> Decoder:
    return ValueDecoder(options)


register("value", _factory)
