"""Backtesting: run recorded readings through an engine on their own clock.

In replay the readings' timestamps are the clock (DESIGN §6): each reading is
observed at ``now = reading.ts``; the engine's :meth:`~rules.engine.Engine.observe`
first performs every time-based transition due up to that instant, each at its
exact deadline, which is precisely "a tick at every deadline between readings".
Replay ends at the last reading, or ticks on to ``until`` when given.

:class:`Sample` is the library's own reading type (the engine only needs the
:class:`~rules.model.ReadingLike` protocol), so tests, ``rules test`` and
``rules replay`` need nothing from the gateway.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from rules.engine import Engine
from rules.events import Output
from rules.model import ReadingLike, Value


@dataclass(frozen=True, slots=True)
class Sample:
    """A reading as rule tests and recordings describe it."""

    device: str
    metric: str
    value: Value
    ts: int
    tags: Mapping[str, str] = field(default_factory=dict)
    topic: str = ""
    trace_id: str = ""


class ReplayOrderError(ValueError):
    """A reading earlier than the one before it: replay needs time order."""


def replay(
    engine: Engine, readings: Iterable[ReadingLike], until: int | None = None
) -> Iterator[Output]:
    """Yield every alert event and command request, in time order.

    ``readings`` must be ordered by ``ts`` (equal times keep their order).
    """
    last: int | None = None
    for i, reading in enumerate(readings):
        ts = reading.ts
        if last is not None and ts < last:
            raise ReplayOrderError(
                f"reading {i + 1} ({reading.device}/{reading.metric}) at "
                f"{ts} is earlier than the previous one at {last}"
            )
        last = ts
        yield from engine.observe(reading, ts)
    if until is not None and (last is None or until >= last):
        yield from engine.tick(until)


def sample_from_json(obj: Mapping[str, Any]) -> Sample:
    """A recorded JSON line (``{"ts", "device", "metric", "value", "tags"}``) → Sample.

    Raises ``ValueError`` naming the problem (the CLI adds the line number).
    """
    try:
        ts, device, metric, value = obj["ts"], obj["device"], obj["metric"], obj["value"]
    except KeyError as exc:
        raise ValueError(f"missing field {exc.args[0]!r}") from None
    if isinstance(ts, bool) or not isinstance(ts, int):
        raise ValueError("'ts' must be an integer (ns since the epoch)")
    if not isinstance(device, str) or not isinstance(metric, str) or not device or not metric:
        raise ValueError("'device' and 'metric' must be non-empty strings")
    if isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, float | bool | str):
        raise ValueError("'value' must be a number, true/false or a string")
    tags = obj.get("tags") or {}
    if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
        raise ValueError("'tags' must be an object of strings")
    return Sample(
        device, metric, value, ts, tags, str(obj.get("topic") or ""), str(obj.get("trace_id") or "")
    )
