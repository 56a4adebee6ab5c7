"""Helpers shared by the built-in decoders."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from devices.model import InvalidReading, check_device_id

# Epoch magnitudes: below 1e11 a number is seconds (until year 5138), below
# 1e14 milliseconds, below 1e17 microseconds, else nanoseconds.
_SECONDS_MAX = 1e11
_MILLIS_MAX = 1e14
_MICROS_MAX = 1e17


LAST_NS = 2**63 - 1
"""The last instant InfluxDB can store (2262-04-11): its timestamps are signed 64-bit ns."""


def in_range(ns: int, shown: object) -> int:
    """``ns`` if it lies between 1970 and 2262, else ``bad_timestamp``."""
    if not 0 <= ns <= LAST_NS:
        raise InvalidReading("bad_timestamp", f"time {str(shown)[:40]!r} is not in 1970…2262")
    return ns


def epoch_to_ns(value: float | int) -> int:
    """Nanoseconds from an epoch number in s, ms, µs or ns (guessed by magnitude)."""
    if isinstance(value, bool) or value != value or value in (float("inf"), float("-inf")):
        raise InvalidReading("bad_timestamp", f"timestamp {value!r} is not a number")
    if value < 0:
        raise InvalidReading("bad_timestamp", f"timestamp {value!r} is before 1970")
    if value < _SECONDS_MAX:
        ns = round(value * 1e9) if isinstance(value, float) else value * 1_000_000_000
    elif value < _MILLIS_MAX:
        ns = round(value * 1e6) if isinstance(value, float) else value * 1_000_000
    elif value < _MICROS_MAX:
        ns = round(value * 1e3) if isinstance(value, float) else value * 1_000
    else:
        ns = int(value)
    return in_range(ns, value)


def parse_time(value: Any) -> int:
    """Nanoseconds from an epoch number or an RFC 3339 string."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return epoch_to_ns(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            if text.replace(".", "", 1).isdigit():
                return epoch_to_ns(float(text))
            moment = datetime.fromisoformat(text)
        except InvalidReading:
            raise
        except ValueError:  # also "²", a digit to isdigit() and not to float()
            raise InvalidReading("bad_timestamp", f"cannot read time {value[:40]!r}") from None
        if moment.tzinfo is None:
            raise InvalidReading(
                "bad_timestamp", f"time {text[:40]!r} has no zone (add Z or +hh:mm)"
            )
        return datetime_ns(moment)
    raise InvalidReading("bad_timestamp", f"cannot read time {value!r}")


def datetime_ns(moment: datetime) -> int:
    """Nanoseconds of an aware datetime, between 1970 and 2262 (else ``bad_timestamp``)."""
    # timestamp() is a float; rebuild from whole seconds to keep microseconds exact.
    whole = math.floor(moment.timestamp())
    return in_range(whole * 1_000_000_000 + moment.microsecond * 1000, moment.isoformat())


def reading_device(device: str) -> str:
    """The device id of a decoded reading, held to :func:`devices.model.check_device_id`.

    A message that names no device is refused as ``empty_device``; any other id is
    accepted or refused exactly as the command policy and the conventions do.
    """
    if not device:
        raise InvalidReading("empty_device", "empty device")
    return check_device_id(device)


def message_device(
    topic: str | None, payload: str | None, configured: str | None, payload_may_differ: bool
) -> str:
    """The device a message's readings belong to, from where it can be named.

    ``topic`` is the topic's ``{device}``, ``payload`` a device id the payload carries
    (``device_field``, a line's ``device`` tag), ``configured`` the input's ``device:``.
    Where the topic names the device it wins: a payload naming another is refused as
    ``device_mismatch`` — the broker's ACL let the sender publish on its own topic, not
    speak for another device — unless the input allows it (``device_from_payload``).
    Every id is held to :func:`devices.model.check_device_id`.
    """
    if payload:
        check_device_id(payload)
        if topic and payload != topic:
            if not payload_may_differ:
                raise InvalidReading(
                    "device_mismatch",
                    f"the payload names device {payload[:40]!r}, the topic {topic[:40]!r}",
                )
            return payload
    return reading_device(topic or payload or configured or "")


def merged_tags(static: Mapping[str, str], extra: Mapping[str, str]) -> Mapping[str, str]:
    if not extra:
        return static
    if not static:
        return extra
    return {**static, **extra}
