"""Keeping time honest: device timestamps out of tolerance, and an unsynchronised clock.

**Device timestamps.** A reading that carries its own time further than
``future_tolerance`` ahead of the gateway's clock, or older than
``past_tolerance``, follows the input's ``bad_time`` policy:

- ``restamp`` (default): the reading keeps its value and gets its arrival
  time (counted as ``outpost_time_corrections_total{action="restamped"}``);
- ``tag``: it keeps its time and gets the tag ``ts_suspect=future|past``;
- ``deadletter``: the whole message goes to the dead-letter topic
  (``ts_future`` / ``ts_past``).

**The gateway's own clock.** A Raspberry Pi has no real-time clock: until NTP
has answered it believes it is 1970 (or the last shutdown). Readings stamped
with their arrival time during that window would land decades away. While the
clock reads earlier than ``clock.valid_after``, such messages are *held* (in
order, at most ``clock.hold_max``; QoS 1 ones stay unacknowledged, so the
broker slows down) together with the monotonic time they arrived; once the
clock is valid they are re-stamped as ``now − (monotonic now − monotonic
arrival)`` — the exact arrival time — and processed. With ``unsynced:
deadletter`` they are dead-lettered instead. Readings with their own valid
timestamps are never held.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from devices.model import Reading

RESTAMP, TAG, DEADLETTER = "restamp", "tag", "deadletter"


class TimePolicy:
    """Applies one input's tolerances; called on the MQTT thread for every message."""

    __slots__ = ("action", "future_ns", "past_ns")

    def __init__(self, future: float, past: float | None, action: str) -> None:
        self.future_ns = int(future * 1e9)
        self.past_ns = None if past is None else int(past * 1e9)
        self.action = action

    def check(self, readings: list[Reading], received_ns: int) -> tuple[list[Reading], str | None]:
        """(readings to keep, dead-letter reason or None). Cheap when all is well."""
        latest = received_ns + self.future_ns
        earliest = None if self.past_ns is None else received_ns - self.past_ns
        suspect = False
        for r in readings:
            if r.ts > latest or (earliest is not None and r.ts < earliest):
                suspect = True
                break
        if not suspect:
            return readings, None
        out = []
        for r in readings:
            side = (
                "future"
                if r.ts > latest
                else ("past" if earliest is not None and r.ts < earliest else None)
            )
            if side is None:
                out.append(r)
            elif self.action == DEADLETTER:
                return [], f"ts_{side}"
            elif self.action == TAG:
                out.append(dataclasses.replace(r, tags=_with(r.tags, "ts_suspect", side)))
            else:
                out.append(dataclasses.replace(r, ts=received_ns))
        return out, None


def _with(tags: Mapping[str, str], key: str, value: str) -> dict[str, str]:
    return {**tags, key: value}


def restamp(readings: list[Reading], wrong_ns: int, right_ns: int) -> list[Reading]:
    """Readings stamped with a wrong arrival time (``wrong_ns``) get ``right_ns`` instead."""
    return [dataclasses.replace(r, ts=right_ns) if r.ts == wrong_ns else r for r in readings]
