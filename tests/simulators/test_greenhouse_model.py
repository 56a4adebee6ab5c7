"""Greenhouse physics, actuator commands and sample faults, without a broker or a clock."""

from __future__ import annotations

import json

import pytest

from simulators.actuators import Actuator
from simulators.faults import (
    DropoutFault,
    FaultPlan,
    IgnoreCommandsFault,
    SpikesFault,
    StuckFault,
)
from simulators.greenhouse import (
    Actuators,
    Greenhouse,
    GreenhouseParams,
    GreenhouseSensor,
    Initial,
    State,
    initial_state,
    saturation_vapour,
    step,
    sunshine,
)
from simulators.scenario import load_scenario

NOON = GreenhouseParams(start_hour=12, initial=Initial(temperature=29))


def after(params: GreenhouseParams, seconds: float, **levels: float) -> State:
    return step(initial_state(params), seconds, Actuators(**levels), params)


def test_the_sun_heats_a_closed_greenhouse_past_30_within_minutes() -> None:
    two_minutes = after(NOON, 150)
    assert 30 < two_minutes.temperature < 31
    assert after(NOON, 1200).temperature > 35  # toward ~40 °C at full sun


def test_the_fan_at_100_cools_the_air_toward_outside() -> None:
    hot = after(NOON, 1200)
    cooled = step(hot, 300, Actuators(fan=100), NOON)
    assert cooled.temperature < 28 < hot.temperature
    half = step(hot, 300, Actuators(fan=50), NOON)
    assert cooled.temperature < half.temperature < step(hot, 300, Actuators(), NOON).temperature


def test_the_heater_warms_the_air_at_night() -> None:
    night = GreenhouseParams(start_hour=23, initial=Initial(temperature=15))
    assert sunshine(night, 0) == 0
    cold = after(night, 1800)
    warm = after(night, 1800, heater=100)
    assert warm.temperature > cold.temperature + 3


def test_the_pump_wets_the_soil_which_otherwise_dries() -> None:
    dry = after(NOON, 3600)
    wet = after(NOON, 3600, pump=100)
    assert dry.soil_moisture < NOON.initial.soil_moisture < wet.soil_moisture
    assert wet.soil_moisture <= NOON.soil.field_capacity


def test_humidity_falls_as_the_air_warms_and_follows_the_fan() -> None:
    start = initial_state(NOON)
    assert start.humidity == pytest.approx(NOON.initial.humidity)
    warmer = after(NOON, 600)
    assert warmer.temperature > start.temperature and warmer.humidity < start.humidity
    # Same vapour, warmer air: lower relative humidity.
    assert 100 * start.vapour / saturation_vapour(35) < start.humidity
    vented = step(warmer, 600, Actuators(fan=100), NOON)
    closed = step(warmer, 600, Actuators(), NOON)
    assert vented.vapour < closed.vapour  # dry outside air comes in


def test_step_is_pure_and_independent_of_how_time_is_cut() -> None:
    one = step(initial_state(NOON), 600, Actuators(fan=30), NOON)
    assert one == step(initial_state(NOON), 600, Actuators(fan=30), NOON)
    many = initial_state(NOON)
    for _ in range(600):
        many = step(many, 1.0, Actuators(fan=30), NOON)
    assert many.temperature == pytest.approx(one.temperature, abs=1e-6)
    with pytest.raises(ValueError):
        step(one, -1, Actuators(), NOON)


def test_sensors_are_deterministic_for_a_seed() -> None:
    def series(seed: int) -> list[dict[str, float | int | str]]:
        sensor = GreenhouseSensor("gh-1", Greenhouse(NOON), seed=seed)
        return [dict(sensor.next(t * 10.0)) for t in range(50)]

    assert series(1) == series(1)
    assert series(1) != series(2)


def test_a_fan_command_is_acked_and_cools_the_shared_greenhouse() -> None:
    models = load_scenario("greenhouse").build_models(seed=1)
    gh1, fan = models[0], models[2]
    assert isinstance(fan, Actuator) and fan.device == "fan-1"
    assert gh1.next(0)["temperature"] == pytest.approx(29, abs=0.5)
    ack = fan.command(b'{"id": "c-1", "speed": 100}', 60.0)
    assert ack == {"id": "c-1", "ok": True}
    assert fan.next(60.0) == {"speed": 100}
    later = gh1.next(660.0)["temperature"]
    assert isinstance(later, float) and later < 27


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (b'{"id": "c", "speed": 140}', "outside 0..100"),
        (b'{"id": "c", "speed": true}', "not a number"),
        (b'{"id": "c", "power": "on"}', "unknown setting 'power'"),
        (b'{"id": "c"}', "nothing to set"),
        (b'{"speed": 10}', "missing command id"),
        (b"not json", "not JSON"),
    ],
)
def test_an_invalid_command_is_refused_whole_with_the_reason(payload: bytes, error: str) -> None:
    fan = Actuator("fan-1", "fan", Greenhouse(NOON))
    ack = fan.command(payload, 0.0)
    assert ack["ok"] is False and error in ack["error"]
    # The id comes back whenever there was one, so the gateway can match the refusal.
    assert ack["id"] == (json.loads(payload).get("id") if payload.startswith(b"{") else None)
    assert fan.level == 0 and fan.refused == 1


def test_heater_and_pump_take_power_or_a_level() -> None:
    heater = Actuator("heater-1", "heater")
    assert heater.command(b'{"id": "1", "power": "ON"}', 0)["ok"]
    assert heater.next(0) == {"level": 100, "power": "on"}
    assert heater.command(b'{"id": "2", "level": 40}', 0)["ok"]
    assert heater.next(0) == {"level": 40, "power": "on"}
    pump = Actuator("pump-1", "pump")
    assert pump.command(b'{"id": "3", "power": false}', 0)["ok"]
    assert pump.next(0) == {"flow": 0, "power": "off"}
    both = pump.command(b'{"id": "4", "power": "on", "flow": 10}', 0)
    assert both["ok"] is False and "either" in both["error"]


def test_stuck_repeats_the_last_values_and_dropout_withholds_samples() -> None:
    plan = FaultPlan(
        [
            StuckFault(kind="stuck", device="gh-1", start=10, end=20, metrics=["temperature"]),
            DropoutFault(kind="dropout", device="gh-1", start=30, end=40),
        ]
    )
    assert plan.apply("gh-1", 5, {"temperature": 25.0, "humidity": 60.0}) == {
        "temperature": 25.0,
        "humidity": 60.0,
    }
    assert plan.apply("gh-1", 12, {"temperature": 26.0, "humidity": 61.0}) == {
        "temperature": 25.0,
        "humidity": 61.0,
    }
    assert plan.apply("gh-1", 20, {"temperature": 27.0, "humidity": 62.0})["temperature"] == 27.0
    assert plan.apply("gh-1", 35, {"temperature": 28.0}) is None
    assert plan.apply("gh-2", 35, {"temperature": 28.0}) == {"temperature": 28.0}
    assert plan.suppressed == 1


def test_spikes_are_occasional_outliers_reproducible_by_seed() -> None:
    def run(seed: int) -> list[float]:
        fault = SpikesFault(kind="spikes", device="gh-1", probability=0.2, magnitude=10)
        plan = FaultPlan([fault], seed=seed)
        out = []
        for t in range(200):
            values = plan.apply("gh-1", t, {"temperature": 25.0})
            assert values is not None
            out.append(float(values["temperature"]))
        return out

    values = run(1)
    outliers = [v for v in values if abs(v - 25) >= 10]
    assert 20 <= len(outliers) <= 60
    assert all(v == 25 or 10 <= abs(v - 25) <= 20 for v in values)
    assert run(1) == values and run(2) != values


def test_ignore_commands_is_limited_to_its_window() -> None:
    plan = FaultPlan([IgnoreCommandsFault(kind="ignore_commands", device="fan-1", start=60)])
    assert not plan.ignores_commands("fan-1", 59.9)
    assert plan.ignores_commands("fan-1", 60) and plan.ignores_commands("fan-1", 1e9)
    assert not plan.ignores_commands("heater-1", 100)
