"""``format: influx`` — InfluxDB line protocol, one or more lines per message.

``climate,device=gh-1,zone=north temperature=21.5,humidity=40i 1795755841000000000``
gives one reading per field. The device is the topic's ``{device}``; a line's
``device`` tag naming another device refuses the message (``device_mismatch``)
unless the input says ``device_from_payload: true``. Without ``{device}`` in the
topic the ``device`` tag names it (else the input's ``device:``); other tags are
kept. A field named ``value``/``state``/``text`` is the measurement itself (what
Outpost writes); any other field ``f`` becomes the metric ``<measurement>_<f>``.
Integers (``40i``, ``40u``) become floats like every other number. Without a
timestamp the arrival time is used.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from devices.decoding import DecodeError, Decoder, Message, too_many_readings
from devices.formats.common import merged_tags, message_device
from devices.formats.registry import register
from devices.model import Reading, check_identifier

_TRUE = {"t", "T", "true", "True", "TRUE"}
_FALSE = {"f", "F", "false", "False", "FALSE"}
_OWN_FIELDS = {"value", "state", "text"}


def _scan(text: str, start: int, stops: str, quotes: bool) -> int:
    """Index of the first unescaped char of ``stops`` from ``start`` (len if none).

    As InfluxDB's own parser does, a separator is escaped when the character just
    before it is a backslash; inside a quoted string field ``\\`` and ``\"`` are pairs.
    """
    i, n, quoted = start, len(text), False
    while i < n:
        c = text[i]
        if quoted:
            if c == "\\":
                i += 2
                continue
            if c == '"':
                quoted = False
        elif quotes and c == '"' and i > start and text[i - 1] == "=":
            quoted = True
        elif c in stops and not (i > start and text[i - 1] == "\\"):
            return i
        i += 1
    if quoted:
        raise DecodeError("bad_line_protocol", "unterminated string field")
    return n


def _split(text: str, sep: str, quotes: bool = False) -> list[str]:
    parts, start = [], 0
    while True:
        end = _scan(text, start, sep, quotes)
        parts.append(text[start:end])
        if end >= len(text):
            return parts
        start = end + 1


_UNESCAPE = (("\\,", ","), ("\\=", "="), ("\\ ", " "))


def _unescape(text: str) -> str:
    """Undo the escaping of names and tags: ``\\,`` ``\\=`` ``\\ `` (other backslashes stay)."""
    if "\\" not in text:
        return text
    for escaped, plain in _UNESCAPE:
        text = text.replace(escaped, plain)
    return text


def _key_value(item: str, what: str) -> tuple[str, str]:
    eq = _scan(item, 0, "=", False)
    if eq >= len(item) or eq == 0:
        raise DecodeError("bad_line_protocol", f"{what} {item[:40]!r} is not key=value")
    return _unescape(item[:eq]), item[eq + 1 :]


def _field_value(raw: str) -> float | bool | str:
    if not raw:
        raise DecodeError("bad_line_protocol", "empty field value")
    if raw[0] == '"':
        if len(raw) < 2 or raw[-1] != '"':
            raise DecodeError("bad_line_protocol", "unterminated string field")
        return raw[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    text = raw[:-1] if raw[-1] in "iu" else raw
    try:
        number = float(text) if raw[-1] not in "iu" else float(int(text))
    except (ValueError, OverflowError):
        raise DecodeError("bad_line_protocol", f"bad field value {raw[:40]!r}") from None
    if not math.isfinite(number):
        raise DecodeError("non_finite", f"non-finite number {raw[:40]!r}")
    return number


def parse_line(line: str) -> tuple[str, dict[str, str], dict[str, float | bool | str], int | None]:
    """(measurement, tags, fields, timestamp ns or None) of one line."""
    key_end = _scan(line, 0, " ", False)
    if key_end >= len(line):
        raise DecodeError("bad_line_protocol", "line has no fields")
    key_parts = _split(line[:key_end], ",")
    measurement = _unescape(key_parts[0])
    tags = {}
    for part in key_parts[1:]:
        name, raw = _key_value(part, "tag")
        tags[name] = _unescape(raw)
    fields_end = _scan(line, key_end + 1, " ", True)
    fields: dict[str, float | bool | str] = {}
    for item in _split(line[key_end + 1 : fields_end], ",", quotes=True):
        name, raw = _key_value(item, "field")
        fields[name] = _field_value(raw)
    rest = line[fields_end + 1 :].strip()
    ts = None
    if rest:
        if not rest.lstrip("-").isdigit():
            raise DecodeError("bad_timestamp", f"bad timestamp {rest[:40]!r}")
        ts = int(rest)
        if not 0 <= ts < 2**63:
            raise DecodeError("bad_timestamp", "timestamp out of range")
    return measurement, tags, fields, ts


class LineProtocolDecoder:
    def __init__(self, options: Mapping[str, Any]) -> None:
        self._device: str | None = options.get("device")
        self._payload_may_differ = bool(options.get("device_from_payload"))
        self._tags: Mapping[str, str] = options.get("tags") or {}
        self._limit: int = options.get("max_readings_per_message") or 1 << 62

    def decode(self, message: Message) -> list[Reading]:
        try:
            text = message.payload.decode("utf-8")
        except UnicodeDecodeError:
            raise DecodeError("bad_utf8", "payload is not UTF-8") from None
        readings: list[Reading] = []
        base_tags = merged_tags(self._tags, message.tags)
        for raw_line in text.splitlines():
            line = raw_line.strip()
            if not line or line.startswith("#"):
                continue
            measurement, tags, fields, ts = parse_line(line)
            device = message_device(
                message.fields.get("device"),
                tags.pop("device", None),
                self._device,
                self._payload_may_differ,
            )
            check_identifier("metric", measurement)
            all_tags = merged_tags(base_tags, tags)
            for name, value in fields.items():
                metric = measurement if name in _OWN_FIELDS else f"{measurement}_{name}"
                check_identifier("metric", metric)  # a field name is part of it
                readings.append(
                    Reading(
                        device=device,
                        metric=metric,
                        value=value,
                        ts=message.received_ns if ts is None else ts,
                        tags=all_tags,
                        topic=message.topic,
                        trace_id=message.trace_id,
                    )
                )
            if len(readings) > self._limit:
                raise too_many_readings(self._limit)
        if not readings:
            raise DecodeError("no_values", "no line-protocol lines")
        return readings


def _factory(options: Mapping[str, Any]) -> Decoder:
    return LineProtocolDecoder(options)


register("influx", _factory)
