"""Durations as Outpost users write them (``30s``, ``5m``, ``1h30m``), in integer nanoseconds.

The one parser for rule files, ``outpost.yaml``, CLI options and API queries;
the gateway's config turns the nanoseconds into the seconds it stores.

Time everywhere in the engine is an ``int`` of nanoseconds since the epoch, like
``Reading.ts``; durations use the same unit so that deadlines are exact integer
sums (``active_at + for``) with no float rounding at the boundary, which matters
because deadlines are inclusive.
"""

from __future__ import annotations

import re

NS = 1
MS = 1_000_000
SECOND = 1_000_000_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR
WEEK = 7 * DAY

UNITS: dict[str, int] = {
    "ns": NS,
    "us": 1000,
    "ms": MS,
    "s": SECOND,
    "m": MINUTE,
    "h": HOUR,
    "d": DAY,
    "w": WEEK,
}
# Longest first, so that a regex alternation reads ``ms`` as one unit, not ``m`` then ``s``.
UNIT_NAMES = "|".join(sorted(UNITS, key=len, reverse=True))

# A duration is one or more number+unit parts: ``90s``, ``1h30m``, ``1.5s``.
# ``ns``/``us`` exist so that every duration prints back exactly (format_duration).
# A space may separate a number from its unit (``30 s``), as outpost.yaml has always allowed.
DURATION_RE = re.compile(rf"(?:\d+(?:\.\d+)?\s*(?:{UNIT_NAMES}))+")
_PART_RE = re.compile(rf"(\d+(?:\.\d+)?)\s*({UNIT_NAMES})")
# The same grammar as a JSON Schema pattern, for editors checking rule files and outpost.yaml.
DURATION_PATTERN = rf"^(0|(\d+(\.\d+)?\s*({UNIT_NAMES}))+)$"

# Anything longer than a year is a typo, and keeping the bound small keeps
# ``now + duration`` far from overflow in a 64-bit journal column.
MAX_DURATION = 366 * DAY


class DurationError(ValueError):
    """A duration string that cannot be read; the message says why."""


def parse_duration(text: str, *, longest: int | None = MAX_DURATION) -> int:
    """``"1h30m"`` → nanoseconds. Raises :class:`DurationError`.

    A bare ``0`` is accepted (``for: 0``); any other number needs a unit,
    because ``for: 60`` is ambiguous (seconds? minutes?) and we refuse to guess.
    ``longest=None`` lifts the bound, for settings such as a retention that
    may rightly exceed a year.
    """
    text = text.strip()
    if text == "0":
        return 0
    if not DURATION_RE.fullmatch(text):
        if re.fullmatch(r"\d+(?:\.\d+)?", text):
            raise DurationError(f"duration {text!r} needs a unit (s, m, h, d, ms), e.g. {text}s")
        raise DurationError(f"bad duration {text!r} (expected e.g. 30s, 5m, 1h30m)")
    total = 0
    for number, unit in _PART_RE.findall(text):
        # Decimal arithmetic on the string keeps "0.1s" exactly 100_000_000 ns.
        whole, _, frac = number.partition(".")
        scale = UNITS[unit]
        total += int(whole) * scale
        if frac:
            total += int(frac) * scale // 10 ** len(frac)
    if longest is not None and total > longest:
        raise DurationError(f"duration {text!r} is longer than {format_duration(longest)}")
    return total


def format_duration(ns: int) -> str:
    """Nanoseconds → the shortest unit string (``90_000_000_000`` → ``"1m30s"``)."""
    if ns == 0:
        return "0s"
    parts: list[str] = []
    rest = ns
    for unit, scale in (
        ("d", DAY),
        ("h", HOUR),
        ("m", MINUTE),
        ("s", SECOND),
        ("ms", MS),
        ("us", 1000),
        ("ns", NS),
    ):
        if rest >= scale:
            parts.append(f"{rest // scale}{unit}")
            rest %= scale
    return "".join(parts)
