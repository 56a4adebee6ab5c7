"""Which rules can match a reading: an index so a reading evaluates only those.

Lookup order, cheapest first: the reading's metric picks a bucket (a dict
lookup; rules without ``metric`` sit in every bucket); within a bucket the
device globs are applied once per (metric, device) and the surviving rules are
cached; tags and topic filters, which depend on the individual reading, are
checked last and only for rules that have them.

The cache is bounded (``max_cache`` entries, default 200,000 ≈ 20k devices × 10
metrics); when full it is cleared, which costs one glob pass per series again —
a flood of made-up device names cannot grow it without bound.

Globs know ``*`` and ``?`` only, case-sensitive (DESIGN §6): character classes
and MQTT wildcards are refused at load time rather than half-supported. A glob
is matched in time linear in the device name (:class:`_Glob`): a regular
expression like ``.*a.*a.*a.*b`` backtracks into every way of splitting the
name, which for a 128-character name is seconds of a stalled event loop.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Generic, TypeVar

from rules.model import Match

T = TypeVar("T")

_GLOB_FORBIDDEN = re.compile(r"[\[\]{}/+#\s\x00-\x1f\x7f]")


def glob_problem(glob: str) -> str | None:
    """Why ``glob`` is not a valid device glob, or None."""
    if not glob:
        return "device glob is empty"
    if bad := _GLOB_FORBIDDEN.search(glob):
        return (
            f"bad device glob {glob!r}: {bad.group()!r} is not allowed (only * and ? are wildcards)"
        )
    return None


@functools.lru_cache(maxsize=4096)
def compile_glob(glob: str) -> Callable[[str], bool]:
    """``gh-*`` → a predicate on device names (whole name, case-sensitive).

    Cached per pattern, so rules with the same glob share one predicate (and
    the index evaluates it once per device).
    """
    if "*" not in glob and "?" not in glob:
        return glob.__eq__
    if glob.endswith("*") and "*" not in glob[:-1] and "?" not in glob:
        prefix = glob[:-1]
        return lambda device: device.startswith(prefix)
    return _Glob(glob)


class _Part:
    """The text between two stars of a glob: literal runs at fixed offsets, ``?`` between."""

    __slots__ = ("length", "literal", "runs")

    def __init__(self, part: str) -> None:
        self.length = len(part)
        self.literal = None if "?" in part else part  # the common case, one str call
        # ((offset, literal), ...); none when the part is all ``?``
        self.runs = tuple((m.start(), m.group()) for m in re.finditer(r"[^?]+", part))

    def at(self, name: str, start: int) -> bool:
        """Does the part match ``name`` at ``start`` (the caller checked it fits)?"""
        if self.literal is not None:
            return name.startswith(self.literal, start)
        return all(name.startswith(run, start + offset) for offset, run in self.runs)

    def find(self, name: str, start: int, stop: int) -> int:
        """Where the leftmost match within ``name[start:stop]`` ends, or -1.

        Each candidate position is tried once, left to right, at a cost of at
        most the part's length: linear in ``stop - start``.
        """
        if self.literal is not None:
            hit = name.find(self.literal, start, stop)
            return hit + self.length if hit >= 0 else -1
        if not self.runs:
            return start + self.length if start + self.length <= stop else -1
        offset, first = self.runs[0]
        last_start = stop - self.length  # the last position where the whole part fits
        while start <= last_start:
            hit = name.find(first, start + offset, last_start + offset + len(first))
            if hit < 0:
                return -1
            start = hit - offset
            if self.at(name, start):
                return start + self.length
            start += 1
        return -1


class _Glob:
    """A glob as its parts between stars, matched left to right without backtracking.

    The first part must match at the start, the last at the end; each part in
    between is taken at its leftmost match after the previous one. That greedy
    choice is always right (a later match of a part leaves less room for the
    rest, never more), so no choice is ever revisited: the parts' searches only
    move forward, each tries a position of the name once, and the work is at
    most the name's length times the glob's.
    """

    __slots__ = ("head", "middle", "shortest", "tail")

    def __init__(self, glob: str) -> None:
        parts = glob.split("*")
        self.head = _Part(parts[0])
        self.tail = _Part(parts[-1]) if len(parts) > 1 else None
        self.middle = tuple(_Part(p) for p in parts[1:-1] if p)
        self.shortest = sum(len(p) for p in parts)

    def __call__(self, name: str) -> bool:
        if self.tail is None:  # no star: ``?`` only
            return len(name) == self.shortest and self.head.at(name, 0)
        if len(name) < self.shortest or not self.head.at(name, 0):
            return False
        stop = len(name) - self.tail.length
        if not self.tail.at(name, stop):
            return False
        start = self.head.length
        for part in self.middle:
            start = part.find(name, start, stop)
            if start < 0:
                return False
        return True


def topic_filter_problem(flt: str) -> str | None:
    """Why ``flt`` is not a valid MQTT topic filter, or None."""
    if not flt:
        return "topic filter is empty"
    levels = flt.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            return f"bad topic filter {flt!r}: '#' must be a whole last level"
        if "+" in level and level != "+":
            return f"bad topic filter {flt!r}: '+' must be a whole level"
    return None


def topic_matches(flt: str, topic: str) -> bool:
    """MQTT filter matching (``sensors/+/temperature``, ``sensors/#``)."""
    if not topic:
        return False
    f_levels, t_levels = flt.split("/"), topic.split("/")
    for i, level in enumerate(f_levels):
        if level == "#":
            return True
        if i >= len(t_levels):
            return False
        if level != "+" and level != t_levels[i]:
            return False
    return len(f_levels) == len(t_levels)


class Entry(Generic[T]):
    """One indexed item with the static part of its match (the device glob)."""

    __slots__ = ("device_ok", "filtered", "item", "tags", "topic")

    def __init__(self, item: T, match: Match) -> None:
        self.item = item
        self.device_ok = compile_glob(match.device) if match.device else None
        self.tags = match.tags
        self.topic = match.topic
        self.filtered = bool(match.tags) or match.topic is not None

    def accepts(self, tags: Mapping[str, str], topic: str) -> bool:
        """The per-reading part of the match (tags, topic filter)."""
        if self.tags and not all(tags.get(k) == v for k, v in self.tags):
            return False
        return self.topic is None or topic_matches(self.topic, topic)


class RuleIndex(Generic[T]):
    """Maps (metric, device, tags, topic) to the items (rules) whose ``match`` accepts it."""

    def __init__(self, items: Iterable[tuple[T, Match]], max_cache: int = 200_000) -> None:
        self._by_metric: dict[str, list[Entry[T]]] = {}
        self._any_metric: list[Entry[T]] = []
        order: list[Entry[T]] = []
        for item, match in items:
            entry = Entry(item, match)
            order.append(entry)
            if match.metric is None:
                self._any_metric.append(entry)
            else:
                self._by_metric.setdefault(match.metric, []).append(entry)
        # Keep file order inside every bucket (rules without metric merged in place).
        rank = {id(e): i for i, e in enumerate(order)}
        for metric, bucket in self._by_metric.items():
            self._by_metric[metric] = sorted(bucket + self._any_metric, key=lambda e: rank[id(e)])
        self._cache: dict[tuple[str, str], tuple[Entry[T], ...]] = {}
        self._max_cache = max_cache

    def candidates(self, metric: str, device: str) -> tuple[Entry[T], ...]:
        key = (metric, device)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        bucket = self._by_metric.get(metric, self._any_metric)
        seen: dict[Callable[[str], bool], bool] = {}  # rules often share a glob
        found_list = []
        for e in bucket:
            ok = e.device_ok
            if ok is not None:
                accepted = seen.get(ok)
                if accepted is None:
                    accepted = seen[ok] = ok(device)
                if not accepted:
                    continue
            found_list.append(e)
        found = tuple(found_list)
        if len(self._cache) >= self._max_cache:
            self._cache.clear()
        self._cache[key] = found
        return found

    def match(self, metric: str, device: str, tags: Mapping[str, str], topic: str) -> list[T]:
        """The items whose match accepts this reading, in rule order."""
        return [
            e.item
            for e in self.candidates(metric, device)
            if not e.filtered or e.accepts(tags, topic)
        ]
