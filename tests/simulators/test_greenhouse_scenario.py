"""Closed-loop scenario files: the built-in greenhouse, and every error with its line."""

from __future__ import annotations

import pytest

from simulators.actuators import Actuator
from simulators.greenhouse import GreenhouseSensor
from simulators.scenario import ScenarioError, load_scenario, parse_scenario


def problems_of(source: str) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(source, "gh.yaml")
    return info.value.problems


def test_builtin_greenhouse_has_sensors_and_actuators_on_one_greenhouse() -> None:
    scenario = load_scenario("greenhouse")
    models = scenario.build_models(seed=1)
    assert [m.device for m in models] == ["gh-1", "gh-2", "fan-1", "heater-1", "pump-1"]
    assert isinstance(models[0], GreenhouseSensor)
    assert models[0].metrics == ("temperature", "humidity", "soil_moisture")
    assert models[1].metrics == ("humidity", "soil_moisture")
    assert all(isinstance(m, Actuator) for m in models[2:])
    assert load_scenario("greenhouse-faults").faults  # the fault showcase loads too


def test_durations_and_faults_parse() -> None:
    scenario = parse_scenario(
        "name: gh\n"
        "devices: [{id: gh-1}]\n"
        "physics: {air: {exchange_time: 30m}, soil: {dry_time: 2h}}\n"
        "actuators: [{id: fan-1, kind: fan}]\n"
        "faults:\n"
        "  - {device: gh-1, kind: stuck, start: 1m, end: 90s, metrics: [temperature]}\n"
        "  - {device: fan-1, kind: ignore_commands, start: 0}\n"
        "  - {device: gh-1, kind: offline, start: 2m, end: 3m, mode: clean}\n"
    )
    assert scenario.physics is not None and scenario.physics.air.exchange_time == 1800
    assert [(f.kind, f.start, f.end) for f in scenario.faults] == [
        ("stuck", 60, 90),
        ("ignore_commands", 0, None),
        ("offline", 120, 180),
    ]


def test_field_errors_in_physics_actuators_and_faults_carry_their_lines() -> None:
    problems = problems_of(
        "name: gh\n"
        "devices: [{id: gh-1}]\n"
        "physics:\n"
        "  air: {exchange_time: soon}\n"  # 4
        "  sun: {sunrise: 20, sunset: 6}\n"  # 5
        "actuators:\n"
        "  - {id: fan-1, kind: blower}\n"  # 7
        "faults:\n"
        "  - {device: gh-1, kind: stuck, start: 5m, end: 1m}\n"  # 9
        "  - {device: gh-1, kind: melt}\n"  # 10
        "  - {device: gh-1, kind: spikes, probability: 2}\n"  # 11
    )
    expected = [
        ("gh.yaml:4:", "not a duration"),
        ("gh.yaml:5:", "sunset"),
        ("gh.yaml:7:", "actuators.0.kind"),
        ("gh.yaml:9:", "must be after start"),
        ("gh.yaml:10:", "melt"),
        ("gh.yaml:11:", "probability"),
    ]
    for prefix, text in expected:
        assert any(p.startswith(prefix) and text in p for p in problems), (prefix, problems)
    assert len(problems) == len(expected), problems


def test_references_between_sections_are_checked_with_lines() -> None:
    problems = problems_of(
        "name: gh\n"
        "devices:\n"
        "  - {id: gh-1, metrics: [temperature, co2]}\n"  # 3: no co2 in the greenhouse
        "physics: {}\n"
        "actuators:\n"
        "  - {id: fan-1, kind: fan}\n"
        "  - {id: gh-1, kind: pump}\n"  # 7: id taken by a sensor
        "  - {id: fan-2, kind: fan}\n"  # 8: a second fan
        "faults:\n"
        "  - {device: gh-9, kind: dropout}\n"  # 10: unknown device
        "  - {device: gh-1, kind: ignore_commands}\n"  # 11: a sensor takes no commands
        "  - {device: fan-1, kind: stuck, metrics: [rpm]}\n"  # 12: fan-1 publishes speed
    )
    expected = [
        ("gh.yaml:3:", "co2"),
        ("gh.yaml:7:", "already used"),
        ("gh.yaml:8:", "one fan"),
        ("gh.yaml:10:", "gh-9"),
        ("gh.yaml:11:", "takes no commands"),
        ("gh.yaml:12:", "'rpm'"),
    ]
    for prefix, text in expected:
        assert any(p.startswith(prefix) and text in p for p in problems), (prefix, problems)


def test_a_scenario_needs_metrics_or_physics_not_both() -> None:
    assert any("needs metrics" in p for p in problems_of("name: empty\n"))
    both = problems_of("name: both\nphysics: {}\nmetrics:\n  co2: {baseline: 400}\n")
    assert any(p.startswith("gh.yaml:3:") and "leave metrics" in p for p in both), both
