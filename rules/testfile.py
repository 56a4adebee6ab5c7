"""Rule test files (``outpost rules test``): loading and checking them.

A test file names rule files (relative to itself) and lists tests; each test
gives input series and what to expect at given times::

    rule_files: [rules.yaml]
    interval: 10s                      # default spacing of series values
    start: "2026-11-27T10:00:00Z"      # optional; times below are offsets from it
    tests:
      - name: hot greenhouse starts the fan
        series:
          - device: gh-1
            metric: temperature
            values: "20 25 31x6 27"    # one value per interval
          - {device: gh-1, metric: humidity, points: [[0s, 50], [30s, 60]]}
        expect:
          - at: 80s
            alerts: [{rule: greenhouse_hot, device: gh-1, state: firing}]
            commands: [{target: fan-1, set: {speed: 100}}]

Series notation (``values``), one entry per ``interval`` from ``offset``:
``20`` a number, ``true``/``false``, any other word a string, ``_`` no reading,
``VxN`` V repeated N times (``31x6``, ``_x3``), ``A+BxN`` / ``A-BxN`` N values
from A in steps of B (``20+1x3`` = 20 21 22).

An ``expect`` entry at time T (inclusive; entries in time order) checks, after
every reading up to T and every deadline up to T:

- ``alerts``: the state of each listed (rule, device) — ``state`` is one state or
  a list; optional ``value``/``message`` compare with the alert's last event;
- ``events``: the alert events emitted in (previous T, T], exactly, in order
  (each ``{rule, device, state}``);
- ``commands``: the command requests emitted in (previous T, T], exactly, in
  order (each ``{target, set}``, optionally ``rule``/``device``).

Every problem of a file is reported at once, at its ``file:line:col``; the
runner is :mod:`rules.ruletest`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rules.durations import DurationError, parse_duration
from rules.loader import _unknown_keys
from rules.replay import Sample
from rules.state import AlertState
from rules.yamlsrc import LocDict, LocList, Mark, Problem, SourceError, load_yaml

__all__ = ["Expect", "RuleTest", "RuleTestFile", "load_test_file", "parse_series"]

FILE_KEYS = ("rule_files", "interval", "start", "tests")
TEST_KEYS = ("name", "series", "expect", "interval", "start")
SERIES_KEYS = ("device", "metric", "tags", "topic", "values", "points", "interval", "offset")
EXPECT_KEYS = ("at", "alerts", "events", "commands")
ALERT_KEYS = ("rule", "device", "state", "value", "message")
EVENT_KEYS = ("rule", "device", "state")
COMMAND_KEYS = ("target", "set", "rule", "device")

_EXPANSION = re.compile(r"^(?P<start>[^x+]+?)(?:(?P<sign>[+-])(?P<step>[0-9.]+))?x(?P<n>\d+)$")


@dataclass(frozen=True, slots=True)
class Expect:
    mark: Mark
    at: int
    alerts: tuple[tuple[Mark, dict[str, Any]], ...] = ()
    events: tuple[dict[str, Any], ...] | None = None
    commands: tuple[dict[str, Any], ...] | None = None


@dataclass(frozen=True, slots=True)
class RuleTest:
    name: str
    mark: Mark
    samples: tuple[Sample, ...]
    expects: tuple[Expect, ...]
    start: int = 0


@dataclass(frozen=True, slots=True)
class RuleTestFile:
    file: str
    rule_files: tuple[str, ...]
    tests: tuple[RuleTest, ...]


def parse_series(text: str) -> list[Any]:
    """``"20 _ 31x2 1+1x3"`` → ``[20.0, None, 31.0, 31.0, 1.0, 2.0, 3.0]`` (None: no reading)."""
    out: list[Any] = []
    for word in text.split():
        m = _EXPANSION.match(word)
        if m and (m["sign"] is None or _is_number(m["start"])):
            n = int(m["n"])
            if n > 100_000:
                raise ValueError(f"{word!r}: at most 100000 repetitions")
            first = _scalar(m["start"])
            if m["sign"] is None:
                out.extend([first] * n)
            else:
                step = float(m["step"]) * (1 if m["sign"] == "+" else -1)
                assert isinstance(first, float)
                out.extend(first + i * step for i in range(n))
            continue
        out.append(_scalar(word))
    return out


def _is_number(word: str) -> bool:
    try:
        float(word)
    except ValueError:
        return False
    return True


def _scalar(word: str) -> Any:
    if word == "_":
        return None
    if word in ("true", "false"):
        return word == "true"
    if _is_number(word):
        return float(word)
    return word


def load_test_file(text: str, file: str) -> RuleTestFile:
    """Parse and check a test file; raise :class:`SourceError` with every problem."""
    problems: list[Problem] = []
    doc = load_yaml(text, file)
    if not isinstance(doc, LocDict):
        raise SourceError(
            [
                Problem(
                    Mark(file, 1, 1), "a rule test file is a mapping with 'rule_files' and 'tests'"
                )
            ]
        )
    _unknown_keys(doc, FILE_KEYS, "rule test file", problems)
    reader = _Reader(problems, doc.mark)
    rule_files = doc.get("rule_files")
    files: list[str] = []
    if not isinstance(rule_files, LocList) or not all(isinstance(f, str) for f in rule_files):
        problems.append(
            Problem(
                doc.locs.get("rule_files", doc.mark), "'rule_files' must be a list of file names"
            )
        )
    else:
        files = list(rule_files)
    interval = reader.duration(doc, "interval", 10 * 10**9)
    start = reader.start(doc, 0)
    tests: list[RuleTest] = []
    items = doc.get("tests")
    if not isinstance(items, LocList):
        problems.append(Problem(doc.locs.get("tests", doc.mark), "'tests' must be a list"))
        items = LocList()
    for i, item in enumerate(items):
        if not isinstance(item, LocDict):
            problems.append(Problem(items.locs[i], "each test must be a mapping"))
            continue
        test = reader.test(item, interval, start, i)
        if test is not None:
            tests.append(test)
    if problems:
        raise SourceError(problems)
    return RuleTestFile(file, tuple(files), tuple(tests))


class _Reader:
    def __init__(self, problems: list[Problem], mark: Mark) -> None:
        self.problems = problems
        self.mark = mark

    def fail(self, mark: Mark, message: str) -> None:
        self.problems.append(Problem(mark, message))

    def duration(self, d: LocDict, key: str, default: int) -> int:
        if key not in d:
            return default
        try:
            return parse_duration(str(d[key]))
        except DurationError as exc:
            self.fail(d.locs[key], f"'{key}': {exc}")
            return default

    def start(self, d: LocDict, default: int) -> int:
        if "start" not in d:
            return default
        raw = d["start"]
        try:
            when = (
                raw
                if isinstance(raw, datetime)
                else datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
            )
            if when.tzinfo is None:
                raise ValueError("no time zone")
            return int(when.timestamp()) * 10**9 + when.microsecond * 1000
        except ValueError:
            self.fail(
                d.locs["start"],
                "'start' must be an RFC 3339 time with a zone, e.g. 2026-11-27T10:00:00Z",
            )
            return default

    def test(self, d: LocDict, interval: int, start: int, i: int) -> RuleTest | None:
        before = len(self.problems)
        _unknown_keys(d, TEST_KEYS, "test", self.problems)
        name = str(d.get("name", f"test {i + 1}"))
        interval = self.duration(d, "interval", interval)
        start = self.start(d, start)
        samples: list[tuple[int, int, Sample]] = []
        series = d.get("series")
        if not isinstance(series, LocList):
            self.fail(d.locs.get("series", d.mark), "'series' must be a list")
            series = LocList()
        for j, s in enumerate(series):
            if not isinstance(s, LocDict):
                self.fail(series.locs[j], "each series must be a mapping")
                continue
            for k, sample in enumerate(self.series(s, interval, start)):
                samples.append((sample.ts, j * 1_000_000 + k, sample))
        expects: list[Expect] = []
        items = d.get("expect")
        if not isinstance(items, LocList):
            self.fail(d.locs.get("expect", d.mark), "'expect' must be a list")
            items = LocList()
        for j, e in enumerate(items):
            if not isinstance(e, LocDict):
                self.fail(items.locs[j], "each expectation must be a mapping")
                continue
            exp = self.expect(e, start)
            if expects and exp.at < expects[-1].at:
                self.fail(e.locs.get("at", e.mark), "expectations must be in time order")
            expects.append(exp)
        if len(self.problems) != before:
            return None
        samples.sort(key=lambda x: (x[0], x[1]))
        return RuleTest(name, d.mark, tuple(s for _, _, s in samples), tuple(expects), start)

    def series(self, d: LocDict, interval: int, start: int) -> list[Sample]:
        _unknown_keys(d, SERIES_KEYS, "series", self.problems)
        device, metric = d.get("device"), d.get("metric")
        if not isinstance(device, str) or not isinstance(metric, str):
            self.fail(d.mark, "a series needs 'device' and 'metric'")
            return []
        raw_tags = d.get("tags")
        if raw_tags is not None and not isinstance(raw_tags, LocDict):
            self.fail(d.locs["tags"], "'tags' must be a mapping of tag names to values")
            return []
        tags = {str(k): str(v) for k, v in (raw_tags or {}).items()}
        topic = str(d.get("topic", ""))
        interval = self.duration(d, "interval", interval)
        offset = self.duration(d, "offset", 0)
        out: list[Sample] = []
        if "values" in d:
            try:
                values = parse_series(str(d["values"]))
            except ValueError as exc:
                self.fail(d.locs["values"], f"'values': {exc}")
                return []
            for k, v in enumerate(values):
                if v is not None:
                    out.append(
                        Sample(device, metric, v, start + offset + k * interval, tags, topic)
                    )
        points = d.get("points")
        if points is not None:
            if not isinstance(points, LocList):
                self.fail(d.locs["points"], "'points' must be a list of [time, value]")
                return out
            for k, p in enumerate(points):
                if not (isinstance(p, list) and len(p) == 2) or not isinstance(
                    p[1], int | float | bool | str
                ):
                    self.fail(points.locs[k], "a point is [time, value], e.g. [30s, 21.5]")
                    continue
                try:
                    t = parse_duration(str(p[0]))
                except DurationError as exc:
                    self.fail(points.locs[k], str(exc))
                    continue
                value = (
                    float(p[1]) if isinstance(p[1], int) and not isinstance(p[1], bool) else p[1]
                )
                out.append(Sample(device, metric, value, start + offset + t, tags, topic))
        if "values" not in d and points is None:
            self.fail(d.mark, "a series needs 'values' or 'points'")
        return out

    def expect(self, d: LocDict, start: int) -> Expect:
        _unknown_keys(d, EXPECT_KEYS, "expectation", self.problems)
        if "at" not in d:
            self.fail(d.mark, "an expectation needs 'at' (a time offset, e.g. 1m)")
        at = start + self.duration(d, "at", 0)
        alerts: list[tuple[Mark, dict[str, Any]]] = []
        for mark, a in self.entries(d, "alerts", ALERT_KEYS):
            states = a.get("state")
            states_list = states if isinstance(states, list) else [states]
            known = {x.value for x in AlertState}
            if not all(isinstance(s, str) and s in known for s in states_list):
                self.fail(mark, f"'state' must be one of {', '.join(s.value for s in AlertState)}")
            if not isinstance(a.get("rule"), str) or not isinstance(a.get("device"), str):
                self.fail(mark, "an expected alert needs 'rule' and 'device'")
            alerts.append((mark, dict(a)))
        events = [dict(e) for _, e in self.entries(d, "events", EVENT_KEYS)]
        commands = [dict(c) for _, c in self.entries(d, "commands", COMMAND_KEYS)]
        return Expect(
            d.mark,
            at,
            tuple(alerts),
            tuple(events) if "events" in d else None,
            tuple(commands) if "commands" in d else None,
        )

    def entries(self, d: LocDict, key: str, keys: tuple[str, ...]) -> list[tuple[Mark, LocDict]]:
        items = d.get(key)
        if items is None:
            return []
        if not isinstance(items, LocList):
            self.fail(d.locs[key], f"'{key}' must be a list")
            return []
        out = []
        for i, item in enumerate(items):
            if not isinstance(item, LocDict):
                self.fail(items.locs[i], f"each entry of '{key}' must be a mapping")
                continue
            _unknown_keys(item, keys, key[:-1], self.problems)
            out.append((items.locs[i], item))
        return out
