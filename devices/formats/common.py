"""Helpers shared by the built-in decoders."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from devices.model import InvalidReading, check_device_id

# Epoch magnitudes: below 1e11 a number is seconds (until year 5138), below
# 1e14 milliseconds, below 1e17 microseconds, else nanoseconds.
_SECONDS_MAX = 1e11
_MILLIS_MAX = 1e14
_MICROS_MAX = 1e17


def epoch_to_ns(value: float | int) -> int:
    """Nanoseconds from an epoch number in s, ms, µs or ns (guessed by magnitude)."""
    if isinstance(value, bool) or value != value or value in (float("inf"), float("-inf")):
        raise InvalidReading("bad_timestamp", f"timestamp {value!r} is not a number")
    if value < 0:
        raise InvalidReading("bad_timestamp", f"timestamp {value!r} is before 1970")
    if value < _SECONDS_MAX:
        return round(value * 1e9) if isinstance(value, float) else value * 1_000_000_000
    if value < _MILLIS_MAX:
        return round(value * 1e6) if isinstance(value, float) else value * 1_000_000
    if value < _MICROS_MAX:
        return round(value * 1e3) if isinstance(value, float) else value * 1_000
    if value >= 2**63:
        raise InvalidReading("bad_timestamp", "timestamp beyond 2262")
    return int(value)


def parse_time(value: Any) -> int:
    """Nanoseconds from an epoch number or an RFC 3339 string."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return epoch_to_ns(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            return (
                epoch_to_ns(float(text)) if text.replace(".", "", 1).isdigit() else _rfc3339(text)
            )
        except ValueError:
            raise InvalidReading("bad_timestamp", f"cannot read time {value[:40]!r}") from None
    raise InvalidReading("bad_timestamp", f"cannot read time {value!r}")


def _rfc3339(text: str) -> int:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise InvalidReading("bad_timestamp", f"time {text[:40]!r} has no zone (add Z or +hh:mm)")
    whole = int(moment.timestamp())
    # timestamp() is a float; rebuild from whole seconds to keep microseconds exact.
    return whole * 1_000_000_000 + moment.microsecond * 1000


def reading_device(device: str) -> str:
    """The device id of a decoded reading, held to :func:`devices.model.check_device_id`.

    A message that names no device is refused as ``empty_device``; any other id is
    accepted or refused exactly as the command policy and the conventions do.
    """
    if not device:
        raise InvalidReading("empty_device", "empty device")
    return check_device_id(device)


def merged_tags(static: Mapping[str, str], extra: Mapping[str, str]) -> Mapping[str, str]:
    if not extra:
        return static
    if not static:
        return extra
    return {**static, **extra}
