"""Replay: readings on their own clock, ticks at exact deadlines, time-ordered output."""

from __future__ import annotations

import pytest

from rules import AlertEvent, Sample, replay
from rules.replay import ReplayOrderError, sample_from_json

from .helpers import S, engine_for

RULES = """
rules:
  - {name: hot, match: {metric: t}, when: value > 30, for: 30s, repeat: 1m}
  - {name: silent, match: {metric: t}, when: absent(2m)}
"""


def test_replay_ticks_at_exact_deadlines_between_readings_in_time_order() -> None:
    readings = [
        Sample("a", "t", 31.0, 0),
        Sample("b", "t", 31.0, 10 * S),
        Sample("a", "t", 31.0, 100 * S),
    ]
    events = [o for o in replay(engine_for(RULES), readings) if isinstance(o, AlertEvent)]
    got = [(e.at // S, e.rule, e.device, e.state.value) for e in events]
    assert got == [
        (0, "hot", "a", "pending"),
        (10, "hot", "b", "pending"),
        (30, "hot", "a", "firing"),
        (40, "hot", "b", "firing"),
        (90, "hot", "a", "firing"),  # repeat, 1m after the last notification
        (100, "hot", "b", "firing"),
    ]  # due at the last reading's time: included
    assert [e.at for e in events] == sorted(e.at for e in events)


def test_replay_ends_at_last_reading_unless_until_is_given() -> None:
    readings = [Sample("a", "t", 1.0, 0)]
    assert list(replay(engine_for(RULES), readings)) == []
    [silent] = list(replay(engine_for(RULES), readings, until=10 * 60 * S))
    assert isinstance(silent, AlertEvent) and silent.at == 120 * S


def test_replay_refuses_out_of_order_readings() -> None:
    with pytest.raises(ReplayOrderError, match="earlier than the previous"):
        list(replay(engine_for(RULES), [Sample("a", "t", 1.0, 5), Sample("a", "t", 1.0, 4)]))


def test_same_timestamp_readings_keep_arrival_order() -> None:
    rules = "rules:\n  - {name: r, match: {metric: t}, when: value > 30}\n"
    out = list(replay(engine_for(rules), [Sample("a", "t", 31.0, 0), Sample("a", "t", 1.0, 0)]))
    assert [o.state.value for o in out if isinstance(o, AlertEvent)] == ["firing", "resolved"]


@pytest.mark.parametrize(
    ("obj", "error"),
    [
        ({"device": "a", "metric": "t", "value": 1}, "missing field 'ts'"),
        ({"ts": "1", "device": "a", "metric": "t", "value": 1}, "'ts' must be an integer"),
        ({"ts": 1, "device": "", "metric": "t", "value": 1}, "non-empty"),
        ({"ts": 1, "device": "a", "metric": "t", "value": None}, "'value' must be"),
        ({"ts": 1, "device": "a", "metric": "t", "value": 1, "tags": {"a": 1}}, "'tags'"),
    ],
)
def test_recorded_lines_are_checked(obj: dict[str, object], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        sample_from_json(obj)


def test_recorded_integers_become_floats() -> None:
    s = sample_from_json({"ts": 1, "device": "a", "metric": "t", "value": 40, "tags": {"z": "n"}})
    assert s.value == 40.0 and type(s.value) is float and s.tags == {"z": "n"}
