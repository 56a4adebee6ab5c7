"""Alert event payloads (DESIGN §5), messages and command requests."""

from __future__ import annotations

import json

from rules import AlertEvent, AlertState, CommandRequest, alert_event_schema, rfc3339
from rules.template import parse_template

from .helpers import Clock, S, engine_for, reading


def test_rfc3339_has_milliseconds_and_z() -> None:
    assert rfc3339(1_795_773_600_123_456_789) == "2026-11-27T10:00:00.123Z"
    assert rfc3339(0) == "1970-01-01T00:00:00.000Z"
    assert rfc3339(None) is None


def test_alert_event_json_is_exactly_the_design_payload() -> None:
    engine = engine_for("""
rules:
  - name: hot
    match: {metric: temperature}
    when: value > 30
    for: 1m
    severity: critical
    labels: {team: growers}
    message: "{device} is {value:.1f} °C in {tags.zone}"
""")
    t0 = 1_795_773_600 * S
    r = reading("gh-1", "temperature", 31.25, 0, zone="north")
    from rules import Sample

    r = Sample(r.device, r.metric, r.value, t0, r.tags, trace_id="abc")
    [pending] = engine.observe(r, t0)
    [firing] = engine.tick(t0 + 60 * S)
    assert isinstance(firing, AlertEvent)
    payload = json.loads(firing.to_json())
    assert payload == {
        "rule": "hot",
        "device": "gh-1",
        "state": "firing",
        "at": "2026-11-27T10:01:00.000Z",
        "severity": "critical",
        "value": 31.25,
        "message": "gh-1 is 31.2 °C in north",
        "labels": {"zone": "north", "team": "growers"},
        "active_at": "2026-11-27T10:00:00.000Z",
        "fired_at": "2026-11-27T10:01:00.000Z",
        "resolved_at": None,
        "trace_id": "abc",
    }
    assert list(payload) == alert_event_schema()["required"]
    assert firing.topic == "outpost/alerts/hot/gh-1"
    assert json.loads(pending.to_json())["fired_at"] is None


def test_message_never_crashes_on_a_format_that_does_not_fit() -> None:
    t = parse_template("{device}: {value:.1f} {tags.missing}|{labels.x!r}")
    assert t.render({"device": "d", "value": "text"}, {}, {"x": "y"}) == "d: text |'y'"
    assert t.render({"device": "d", "value": None}, {}, {}) == "d: null |''"


def test_commands_carry_rule_device_target_settings_and_trace() -> None:
    c = Clock(
        engine_for("""
rules:
  - name: hot
    match: {metric: m}
    when: value > 30
    actions:
      - command: {device: "{device}-fan", set: {speed: 100, mode: "manual"}}
    on_resolved:
      - command: {device: fan-1, set: {speed: 0}}
""")
    )
    c.feed(0, 31, device="gh-1")
    c.feed(10, 20, device="gh-1")
    fired, resolved = c.commands()
    assert fired == CommandRequest(
        "hot", "gh-1", "gh-1-fan", {"speed": 100, "mode": "manual"}, AlertState.FIRING, 0, ""
    )
    assert (resolved.target, dict(resolved.settings), resolved.trigger, resolved.at) == (
        "fan-1",
        {"speed": 0},
        AlertState.RESOLVED,
        10 * S,
    )
    assert json.loads(fired.to_json())["set"] == {"speed": 100, "mode": "manual"}


def test_events_and_commands_come_in_time_order() -> None:
    c = Clock(
        engine_for("""
rules:
  - name: hot
    match: {metric: m}
    when: value > 30
    for: 10s
    actions: [{command: {device: fan, set: {on: true}}}]
""")
    )
    c.feed(0, 31)
    c.feed(25, 31)
    kinds = [(type(o).__name__, o.at / S) for o in c.outputs]
    assert kinds == [("AlertEvent", 0), ("AlertEvent", 10), ("CommandRequest", 10)]
