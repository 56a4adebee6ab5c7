"""Sparkplug B payloads: protobuf bytes in, checked Python values out (and commands back).

:func:`parse` turns bytes into the generated ``Payload`` message
(:mod:`wire.sparkplug_b_pb2`); :func:`value_of` reads one metric's value *by the
datatype its birth certificate declared*, and :func:`unit_of` its ``engUnit``
property. Everything raises only :class:`DecodeError` (a per-metric
:class:`MetricRefused` is one), whatever the bytes: protobuf's own parse errors,
text fields that are not UTF-8 (the parser hands those over as ``bytes``), values
outside their datatype's range.

Values (Sparkplug 3.0.0 §6.4.16):

| datatype | field | reading |
|---|---|---|
| Int8 … Int64 | ``int_value``, ``long_value`` | float (see below) |
| UInt8 … UInt64 | ``int_value``, ``long_value`` | float, refused above the type's maximum |
| Float, Double | ``float_value`` / ``double_value`` | float, refused if not finite |
| Boolean | ``boolean_value`` | bool |
| String, Text, UUID | ``string_value`` | str |
| DateTime | ``long_value`` (ms since the epoch) | RFC 3339 text, UTC |

A negative Int8/Int16 is read both as the two's complement of the type's width
(``0xF9`` is -7, as Eclipse Tahu's Python library writes it) and sign-extended to
the field's width (``0xFFFFFFF9``, as its Java library does); anything else outside
the type's range is refused. Every other datatype (DataSet, Template, Bytes,
File, arrays, property sets) is refused per metric with reason
``unsupported_datatype``. Numbers above 2**53 lose precision as floats, as every
number Outpost stores is a float.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from google.protobuf.message import DecodeError as ProtobufError

from devices.decoding import DecodeError
from devices.model import InvalidReading, Value
from rules import rfc3339
from wire import sparkplug_b_pb2 as pb

Payload = pb.Payload
Metric = pb.Payload.Metric

INT8, INT16, INT32, INT64 = pb.Int8, pb.Int16, pb.Int32, pb.Int64
UINT8, UINT16, UINT32, UINT64 = pb.UInt8, pb.UInt16, pb.UInt32, pb.UInt64
FLOAT, DOUBLE, BOOLEAN, STRING = pb.Float, pb.Double, pb.Boolean, pb.String
DATETIME, TEXT, UUID = pb.DateTime, pb.Text, pb.UUID
UNKNOWN = pb.Unknown

# datatype → (bits, signed) of the integer types
INTEGERS = {
    INT8: (8, True), INT16: (16, True), INT32: (32, True), INT64: (64, True),
    UINT8: (8, False), UINT16: (16, False), UINT32: (32, False), UINT64: (64, False),
}  # fmt: skip
SCALARS = frozenset({*INTEGERS, FLOAT, DOUBLE, BOOLEAN, STRING, DATETIME, TEXT, UUID})
_FIELD_BITS = {"int_value": 32, "long_value": 64}
_TEXT_TYPES = frozenset({STRING, TEXT, UUID})
MS_MAX = (2**63 - 1) // 1_000_000  # the last millisecond a nanosecond int64 can hold


class MetricRefused(DecodeError):
    """One metric cannot become a reading; the rest of its message still can."""


def parse(data: bytes) -> Payload:
    """The payload in ``data``; DecodeError ``bad_protobuf`` if it is not one."""
    payload = Payload()
    try:
        payload.ParseFromString(data)
    except ProtobufError as exc:
        raise DecodeError("bad_protobuf", f"not a Sparkplug B payload: {exc}") from None
    return payload


def type_name(datatype: int) -> str:
    try:
        return pb.DataType.Name(datatype)
    except ValueError:
        return f"datatype {datatype}"


def text(value: Any, what: str) -> str:
    """A protobuf string field; the parser hands over bytes when they are not UTF-8."""
    if not isinstance(value, str):
        raise DecodeError("bad_utf8", f"{what} is not UTF-8")
    return value


def value_of(metric: Metric, datatype: int) -> Value:
    """The metric's value as ``datatype`` (the birth's); MetricRefused if it cannot be one."""
    field = metric.WhichOneof("value")
    if datatype in INTEGERS:
        bits, signed = INTEGERS[datatype]
        if field not in _FIELD_BITS:
            raise _wrong_field(metric, datatype, field)
        return float(_integer(getattr(metric, field), _FIELD_BITS[field], bits, signed, datatype))
    if datatype in (FLOAT, DOUBLE):
        if field not in ("float_value", "double_value"):
            raise _wrong_field(metric, datatype, field)
        number = float(getattr(metric, field))
        if not math.isfinite(number):
            raise MetricRefused("non_finite", f"{type_name(datatype)} value {number}")
        return number
    if datatype == BOOLEAN:
        if field != "boolean_value":
            raise _wrong_field(metric, datatype, field)
        return bool(metric.boolean_value)
    if datatype in _TEXT_TYPES:
        if field != "string_value":
            raise _wrong_field(metric, datatype, field)
        try:
            return text(metric.string_value, "a String value")
        except InvalidReading as exc:
            raise MetricRefused(exc.reason, str(exc)) from None
    if datatype == DATETIME:
        if field not in _FIELD_BITS:
            raise _wrong_field(metric, datatype, field)
        ms = getattr(metric, field)
        if ms > MS_MAX:
            raise MetricRefused("bad_value", f"DateTime {ms} ms is beyond the year 2262")
        return rfc3339(ms * 1_000_000)
    raise MetricRefused(
        "unsupported_datatype",
        f"{type_name(datatype)} metrics are not stored: Outpost keeps numbers, booleans and text",
    )


def _integer(raw: int, field_bits: int, bits: int, signed: bool, datatype: int) -> int:
    if signed:
        if raw < 1 << bits:  # two's complement of the type's own width
            return raw - (1 << bits) if raw >> (bits - 1) else raw
        if raw >= (1 << field_bits) - (1 << (bits - 1)):  # sign-extended to the field's width
            return raw - (1 << field_bits)
    elif raw < 1 << bits:
        return raw
    raise MetricRefused("out_of_range", f"{raw} does not fit {type_name(datatype)}")


def _wrong_field(metric: Metric, datatype: int, field: str | None) -> MetricRefused:
    return MetricRefused(
        "bad_value",
        f"a {type_name(datatype)} metric carries {field or 'no value'}",
    )


def unit_of(metric: Metric) -> str:
    """The ``engUnit`` property of a birth metric (a String property), else ``""``."""
    if not metric.HasField("properties"):
        return ""
    props = metric.properties
    for key, value in zip(props.keys, props.values, strict=False):
        if key == "engUnit" and value.WhichOneof("value") == "string_value":
            unit = value.string_value
            return unit if isinstance(unit, str) and unit.isprintable() else ""
    return ""


def timestamp_ns(ms: int) -> int:
    """Sparkplug milliseconds as nanoseconds; DecodeError beyond what InfluxDB can hold."""
    if ms > MS_MAX:
        raise DecodeError("bad_timestamp", f"timestamp {ms} ms is beyond the year 2262")
    return ms * 1_000_000


def command_value(datatype: int, value: Any) -> tuple[str, Any]:
    """The protobuf field and value that write ``value`` to a ``datatype`` metric.

    InvalidReading ``bad_value`` when ``value`` cannot be that datatype (a float for
    an Int16, 300 for a UInt8, a string for a Boolean): nothing is rounded or clamped.
    """
    name = type_name(datatype)
    if datatype == BOOLEAN:
        if not isinstance(value, bool):
            raise InvalidReading("bad_value", f"{value!r} is not a Boolean")
        return "boolean_value", value
    if datatype in INTEGERS or datatype == DATETIME:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidReading("bad_value", f"{value!r} is not a whole number for {name}")
        bits, signed = INTEGERS.get(datatype, (64, False))
        low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
        if not low <= value <= high:
            raise InvalidReading("bad_value", f"{value} is outside {name} ({low}..{high})")
        field = "long_value" if bits == 64 else "int_value"
        return field, value % (1 << (64 if bits == 64 else 32))  # negative: sign-extended
    if datatype in (FLOAT, DOUBLE):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidReading("bad_value", f"{value!r} is not a number for {name}")
        if not math.isfinite(value):
            raise InvalidReading("bad_value", f"{value!r} is not finite")
        return ("float_value" if datatype == FLOAT else "double_value"), float(value)
    if datatype in _TEXT_TYPES:
        if not isinstance(value, str):
            raise InvalidReading("bad_value", f"{value!r} is not text for {name}")
        return "string_value", value
    raise InvalidReading("bad_command", f"{name} metrics cannot be written by Outpost")


def encode(
    metrics: Iterable[tuple[str | None, int | None, int, str, Any]],
    timestamp_ms: int,
) -> bytes:
    """An NCMD/DCMD payload: (name, alias, datatype, field, value) per metric, no ``seq``.

    A metric is written by its alias when the birth gave one (and then without its
    name, Sparkplug 3.0.0 §6.4.3), else by its name; the datatype is included so that
    edge nodes which read a command's value by its own datatype field can.
    """
    payload = Payload(timestamp=timestamp_ms)
    for name, alias, datatype, field, value in metrics:
        metric = payload.metrics.add()
        if alias is not None:
            metric.alias = alias
        else:
            metric.name = name or ""
        metric.timestamp = timestamp_ms
        metric.datatype = datatype
        setattr(metric, field, value)
    return payload.SerializeToString()
