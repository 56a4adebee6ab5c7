"""The cap on distinct series: what keeps a flood of made-up names from filling InfluxDB.

A series is what InfluxDB indexes: a measurement (the metric) with its tag set (the
device and the reading's tags). Every new one costs InfluxDB memory for as long as it
keeps the data, so a sender inventing names — one metric per array index, a counter
in a tag — can exhaust it. :class:`SeriesLimit` remembers the series the gateway has
accepted since it started, up to ``max_series``; past that a message that would add
a new series is refused whole (``too_many_series``), while the known series keep
being written.

A series is remembered by a 64-bit hash of its name, not the name itself (100,000
series cost about 8 MB); two series sharing a hash — about one chance in 10^9 at the
cap — would only let one more series in.
"""

from __future__ import annotations

from collections.abc import Iterable

from devices.model import InvalidReading, Reading


def series_of(reading: Reading) -> int:
    """The hash that stands for the reading's series (metric, device, tags in any order)."""
    tags = reading.tags
    if not tags:
        return hash((reading.metric, reading.device))
    return hash((reading.metric, reading.device, frozenset(tags.items())))


class SeriesLimit:
    """The series accepted since start, at most ``max_series`` of them."""

    def __init__(self, max_series: int) -> None:
        self.max_series = max_series
        self._known: set[int] = set()

    def __len__(self) -> int:
        return len(self._known)

    def admit(self, readings: Iterable[Reading]) -> None:
        """Remember the readings' series; InvalidReading if that would pass the cap."""
        known = self._known
        new: set[int] | None = None
        for reading in readings:
            key = series_of(reading)
            if key not in known:
                if new is None:
                    new = set()
                new.add(key)
        if new is None:
            return
        if len(known) + len(new) > self.max_series:
            raise InvalidReading(
                "too_many_series",
                f"{len(new)} new series; the gateway already writes {len(known)} "
                f"of max_series {self.max_series}",
            )
        known |= new
