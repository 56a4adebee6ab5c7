"""``format: json`` — a JSON object whose scalar fields are metrics.

``{"temperature": 21.5, "env": {"co2": 415}, "ts": 1795755841}`` gives the
metrics ``temperature`` and ``env_co2`` (nested objects flattened with ``_``,
list items by index). ``time_field`` names the reading time (epoch s/ms/ns or
RFC 3339); without it the arrival time is used. ``null`` fields are skipped.
``device_field`` names a field holding the device id, for topics without ``{device}``;
where the topic names the device, a payload naming another is refused
(``device_mismatch``) unless the input says ``device_from_payload: true``.
A message with one bad field is refused whole: it goes to the dead-letter
topic intact rather than half-written.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from devices.decoding import DecodeError, Decoder, Message, load_json, too_many_readings
from devices.formats.common import merged_tags, message_device, parse_time
from devices.formats.registry import register
from devices.model import InvalidReading, Reading, check_identifier, check_value

MAX_DEPTH = 16
"""Nesting deeper than this is refused: no sensor needs it, and it costs recursion."""


def load_object(payload: bytes) -> dict[str, Any]:
    data = load_json(payload)
    if not isinstance(data, dict):
        raise DecodeError("bad_json", f"expected a JSON object, got {type(data).__name__}")
    return data


def flatten(
    data: Mapping[str, Any], skip: set[str], limit: int = 1 << 62
) -> list[tuple[str, Any]]:
    """Scalar leaves as (metric name, value), nested keys joined with ``_``.

    More than ``limit`` leaves refuse the message (``too_many_readings``) as soon as
    they are counted: a 60 KB array would otherwise make 20,000 readings first.
    """
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
            if len(out) > limit:
                raise too_many_readings(limit)
    return out


class JsonDecoder:
    def __init__(self, options: Mapping[str, Any]) -> None:
        self._time_field: str | None = options.get("time_field")
        self._device_field: str | None = options.get("device_field")
        self._device: str | None = options.get("device")
        self._payload_may_differ = bool(options.get("device_from_payload"))
        self._tags: Mapping[str, str] = options.get("tags") or {}
        self._skip = {k for k in (self._time_field, self._device_field) if k}
        self._limit: int = options.get("max_readings_per_message") or 1 << 62

    def decode(self, message: Message) -> list[Reading]:
        data = load_object(message.payload)
        claimed = None
        if self._device_field and data.get(self._device_field) is not None:
            claimed = data[self._device_field]
            if not isinstance(claimed, str):
                raise DecodeError("bad_device", f"field {self._device_field!r} is not a string")
        elif self._device_field and not message.fields.get("device") and not self._device:
            raise DecodeError("empty_device", f"no string field {self._device_field!r}")
        device = message_device(
            message.fields.get("device"), claimed, self._device, self._payload_may_differ
        )
        ts = message.received_ns
        if self._time_field and data.get(self._time_field) is not None:
            ts = parse_time(data[self._time_field])
        tags = merged_tags(self._tags, message.tags)
        readings = []
        for metric, raw_value in flatten(data, self._skip, self._limit):
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
