"""Topics and payloads of the "outpost" device convention (DESIGN.md §5).

A *sample* is one device's values at one instant. It goes out as

- ``value`` style: one message per metric on ``sensors/{device}/{metric}``,
  payload the bare number (``21.53``), no timestamp (the gateway stamps arrival);
- ``json`` style: one message on ``sensors/{device}``,
  ``{"temperature": 21.53, …, "ts": 1795755841123}``;
- ``both``: all of the above.

``ts`` is the sample's wall-clock time as an integer in **epoch milliseconds**
by default (``ts_unit``): seconds would merge samples taken within one second
at rates above 1 Hz, and InfluxDB overwrites points with equal timestamps.
The load generator uses nanoseconds so that every benchmark point is distinct.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from enum import StrEnum

from simulators.model import Value

STATUS_ONLINE = b"online"
STATUS_OFFLINE = b"offline"

_TS_DIVISOR = {"s": 1_000_000_000, "ms": 1_000_000, "ns": 1}
TS_UNITS = tuple(_TS_DIVISOR)


class Style(StrEnum):
    VALUE = "value"
    JSON = "json"
    BOTH = "both"

    def messages_per_sample(self, metrics: int) -> int:
        return {Style.VALUE: metrics, Style.JSON: 1, Style.BOTH: metrics + 1}[self]


def check_topic_level(value: str, kind: str = "device id") -> str:
    """``value`` if it is usable as one MQTT topic level, else ``ValueError``."""
    # Device ids and metric names become MQTT topic levels: wildcards,
    # separators or control characters would publish somewhere else (or nowhere).
    if not value:
        raise ValueError(f"{kind} is empty")
    bad = [c for c in value if c in "+#/" or c < " " or c == "\x7f"]
    if bad:
        raise ValueError(f"{kind} {value!r} contains {bad[0]!r}")
    return value


def status_topic(device: str) -> str:
    return f"devices/{device}/status"


def set_topic(device: str) -> str:
    return f"devices/{device}/set"


def ack_topic(device: str) -> str:
    return f"devices/{device}/ack"


def encode_sample(
    device: str,
    values: Mapping[str, Value],
    style: Style,
    ts_ns: int,
    ts_unit: str = "ms",
) -> list[tuple[str, bytes]]:
    """``(topic, payload)`` messages carrying one sample in the given style."""
    out: list[tuple[str, bytes]] = []
    if style is not Style.JSON:
        # Numbers as Python writes them (21.53, 612); text as a JSON string ("on").
        out.extend((f"sensors/{device}/{m}", _scalar(v)) for m, v in values.items())
    if style is not Style.VALUE:
        body = {**values, "ts": ts_ns // _TS_DIVISOR[ts_unit]}
        out.append((f"sensors/{device}", json.dumps(body, separators=(",", ":")).encode()))
    return out


def _scalar(value: Value) -> bytes:
    return json.dumps(value).encode() if isinstance(value, str) else repr(value).encode()
