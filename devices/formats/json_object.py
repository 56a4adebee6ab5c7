"""``format: json`` — a JSON object whose scalar fields are metrics.

``{"temperature": 21.5, "env": {"co2": 415}, "ts": 1795755841}`` gives the
metrics ``temperature`` and ``env_co2`` (nested objects flattened with ``_``,
list items by index). ``time_field`` names the reading time (epoch s/ms/ns or
RFC 3339); without it the arrival time is used. ``null`` fields are skipped.
A message with one bad field is refused whole: it goes to the dead-letter
topic intact rather than half-written.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from devices.decoding import DecodeError, Decoder, Message
from devices.formats.common import merged_tags, parse_time, reading_device
from devices.formats.registry import register
from devices.model import InvalidReading, Reading, check_identifier, check_value

MAX_DEPTH = 16
"""Nesting deeper than this is refused: no sensor needs it, and it costs recursion."""


def _no_constants(name: str) -> Any:
    # json.loads accepts NaN and Infinity by default; they are not JSON.
    raise DecodeError("non_finite", f"non-finite number {name}")


def load_object(payload: bytes) -> dict[str, Any]:
    try:
        # Decode first: json.loads would guess UTF-16/32 from the first bytes.
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise DecodeError("bad_utf8", "payload is not UTF-8") from None
    try:
        data = json.loads(text, parse_constant=_no_constants)
    except RecursionError:
        raise DecodeError("too_deep", "JSON nested too deep") from None
    except InvalidReading:
        raise
    except ValueError as exc:
        # Also catches integers longer than Python's 4300-digit limit.
        raise DecodeError("bad_json", f"not JSON: {str(exc)[:80]}") from None
    if not isinstance(data, dict):
        raise DecodeError("bad_json", f"expected a JSON object, got {type(data).__name__}")
    return data


def flatten(data: Mapping[str, Any], skip: set[str]) -> list[tuple[str, Any]]:
    """Scalar leaves as (metric name, value), nested keys joined with ``_``."""
    out: list[tuple[str, Any]] = []
    stack: list[tuple[str, Any, int]] = [
        (key, value, 1) for key, value in reversed(list(data.items())) if key not in skip
    ]
    while stack:
        name, value, depth = stack.pop()
        if isinstance(value, dict):
            if depth >= MAX_DEPTH:
                raise DecodeError("too_deep", f"{name}: nested deeper than {MAX_DEPTH}")
            stack.extend((f"{name}_{k}", v, depth + 1) for k, v in reversed(list(value.items())))
        elif isinstance(value, list):
            if depth >= MAX_DEPTH:
                raise DecodeError("too_deep", f"{name}: nested deeper than {MAX_DEPTH}")
            stack.extend((f"{name}_{i}", v, depth + 1) for i, v in reversed(list(enumerate(value))))
        elif value is not None:
            out.append((name, value))
    return out


class JsonDecoder:
    def __init__(self, options: Mapping[str, Any]) -> None:
        self._time_field: str | None = options.get("time_field")
        self._device_field: str | None = options.get("device_field")
        self._device: str | None = options.get("device")
        self._tags: Mapping[str, str] = options.get("tags") or {}
        self._skip = {k for k in (self._time_field, self._device_field) if k}

    def decode(self, message: Message) -> list[Reading]:
        data = load_object(message.payload)
        device = message.fields.get("device") or ""
        if not device and self._device_field:
            raw = data.get(self._device_field)
            if not isinstance(raw, str):
                raise DecodeError("empty_device", f"no string field {self._device_field!r}")
            device = raw
        device = reading_device(device or self._device or "")
        ts = message.received_ns
        if self._time_field and data.get(self._time_field) is not None:
            ts = parse_time(data[self._time_field])
        tags = merged_tags(self._tags, message.tags)
        readings = []
        for metric, raw_value in flatten(data, self._skip):
            check_identifier("metric", metric)
            try:
                value = check_value(raw_value)
            except InvalidReading as exc:
                raise DecodeError(exc.reason, f"{metric}: {exc}") from None
            readings.append(
                Reading(
                    device=device,
                    metric=metric,
                    value=value,
                    ts=ts,
                    tags=tags,
                    topic=message.topic,
                    trace_id=message.trace_id,
                )
            )
        if not readings:
            raise DecodeError("no_values", "JSON object has no values")
        return readings


def _factory(options: Mapping[str, Any]) -> Decoder:
    return JsonDecoder(options)


register("json", _factory)
