"""Scenario files: the default, overrides, and every error with its line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simulators.payloads import Style, encode_sample
from simulators.scenario import ScenarioError, load_scenario, parse_scenario


def test_default_scenario_has_three_air_sensors() -> None:
    scenario = load_scenario()
    plan = scenario.device_plan()
    assert [d for d, _ in plan] == ["sim-1", "sim-2", "sim-3"]
    assert set(plan[0][1]) >= {"temperature", "humidity", "pressure"}


def test_device_count_and_prefix_override_the_scenario() -> None:
    plan = load_scenario().device_plan(count=5, prefix="lab-")
    assert [d for d, _ in plan] == ["lab-1", "lab-2", "lab-3", "lab-4", "lab-5"]


def test_scenario_file_with_named_devices(tmp_path: Path) -> None:
    path = tmp_path / "gh.yaml"
    path.write_text(
        "name: gh\n"
        "devices:\n"
        "  - {id: gh-1, metrics: [temperature]}\n"
        "  - {id: gh-2}\n"
        "metrics:\n"
        "  temperature: {baseline: 24, noise: 0.1}\n"
        "  humidity: {baseline: 60}\n"
    )
    scenario = load_scenario(str(path))
    assert scenario.device_plan() == [
        ("gh-1", ["temperature"]),
        ("gh-2", ["temperature", "humidity"]),
    ]
    with pytest.raises(ScenarioError, match="cannot change"):
        scenario.device_plan(count=5)


def test_every_error_is_reported_with_its_line() -> None:
    source = (
        "name: bad\n"
        "devices:\n"
        "  - {id: gh/1}\n"  # line 3: a '/' would change the topic
        "metrics:\n"
        "  temperature:\n"
        "    baseline: 120\n"
        "    max: 100\n"  # line 7 is inside the temperature mapping (line 5)
        "  humidity: {baseline: 40, colour: red}\n"  # line 8: unknown key
    )
    with pytest.raises(ScenarioError) as info:
        parse_scenario(source, "bad.yaml")
    problems = info.value.problems
    assert any(p.startswith("bad.yaml:3:") and "'/'" in p for p in problems), problems
    assert any(p.startswith("bad.yaml:5:") and "outside" in p for p in problems), problems
    assert any(p.startswith("bad.yaml:8:") and "colour" in p for p in problems), problems


def test_unknown_scenario_names_the_built_in_ones() -> None:
    with pytest.raises(ScenarioError, match="built-in: greenhouse, greenhouse-faults, sensors"):
        load_scenario("no-such-scenario")


def test_value_style_is_one_message_per_metric() -> None:
    msgs = encode_sample("sim-1", {"temperature": 21.5, "co2": 612}, Style.VALUE, 0)
    assert msgs == [("sensors/sim-1/temperature", b"21.5"), ("sensors/sim-1/co2", b"612")]


def test_json_style_carries_ts_in_the_chosen_unit() -> None:
    ts_ns = 1_795_755_841_123_456_789
    for unit, ts in [("ms", 1_795_755_841_123), ("s", 1_795_755_841), ("ns", ts_ns)]:
        [(topic, payload)] = encode_sample("sim-1", {"humidity": 40}, Style.JSON, ts_ns, unit)
        assert topic == "sensors/sim-1"
        assert json.loads(payload) == {"humidity": 40, "ts": ts}
    both = encode_sample("sim-1", {"humidity": 40, "co2": 500}, Style.BOTH, ts_ns)
    assert len(both) == Style.BOTH.messages_per_sample(2) == 3
