"""The value generator alone: no broker, no clock."""

from __future__ import annotations

import math

import pytest

from simulators.model import MetricSpec, SensorModel
from simulators.scenario import load_scenario


def run(model: SensorModel, steps: int, dt: float) -> list[dict[str, float | int]]:
    return [model.next(i * dt) for i in range(steps)]


def test_same_seed_gives_the_same_values() -> None:
    scenario = load_scenario()
    a = [run(m, 200, 1.0) for m in scenario.build_models(seed=42)]
    b = [run(m, 200, 1.0) for m in scenario.build_models(seed=42)]
    assert a == b


def test_other_seed_or_other_device_gives_other_values() -> None:
    scenario = load_scenario()
    one, two, _ = scenario.build_models(seed=42)
    other_seed = scenario.build_models(seed=43)[0]
    series = run(one, 50, 1.0)
    assert series != run(two, 50, 1.0)
    assert series != run(other_seed, 50, 1.0)


def test_a_device_keeps_its_values_whatever_the_fleet_size() -> None:
    scenario = load_scenario()
    small = scenario.build_models(seed=7, count=2)[1]
    large = scenario.build_models(seed=7, count=20)[1]
    assert small.device == large.device == "sim-2"
    assert run(small, 30, 1.0) == run(large, 30, 1.0)


def test_values_stay_realistic_over_two_simulated_days() -> None:
    scenario = load_scenario()
    for model in scenario.build_models(seed=1, count=3):
        samples = run(model, 2 * 24 * 360, 10.0)  # one sample every 10 s
        for name, spec in scenario.metrics.items():
            values = [s[name] for s in samples]
            # 6 standard deviations of wander and noise around the device's baseline,
            # plus the trend: a sensor that leaves this band looks broken on a chart.
            band = spec.spread + 6 * (spec.wander + spec.noise)
            trend = abs(spec.drift) * 48
            low = max(spec.min, spec.baseline - band - trend)
            high = min(spec.max, spec.baseline + band + trend)
            assert low <= min(values) and max(values) <= high, (model.device, name)
            assert all(spec.min <= v <= spec.max for v in values)
            if spec.wander:
                assert len(set(values)) > 100, f"{name} does not move"


def test_values_are_rounded_to_the_metric_decimals() -> None:
    scenario = load_scenario()
    sample = scenario.build_models(seed=3)[0].next(0.0)
    assert isinstance(sample["co2"], int) and isinstance(sample["battery"], int)
    assert sample["temperature"] == round(sample["temperature"], 2)
    assert sample["humidity"] == round(sample["humidity"], 1)


def test_drift_moves_the_value_and_stops_at_the_sensor_range() -> None:
    battery = MetricSpec(baseline=50, drift=-10, min=0, max=100, decimals=1)
    model = SensorModel("b", {"battery": battery}, seed=0)
    assert model.next(0)["battery"] == 50
    assert model.next(3600)["battery"] == 40
    assert model.next(10 * 3600)["battery"] == 0  # empty, not negative


def test_wander_statistics_do_not_depend_on_the_sample_interval() -> None:
    spec = MetricSpec(baseline=0, wander=1.0, wander_time=60, decimals=4)

    def stddev(dt: float) -> float:
        model = SensorModel("w", {"x": spec}, seed=5)
        xs = [model.next(i * dt)["x"] for i in range(20_000)]
        mean = sum(xs) / len(xs)
        return math.sqrt(sum((x - mean) ** 2 for x in xs) / len(xs))

    # 20,000 samples at 1 s and at 30 s: same stationary spread (±35 %: the 1 s run
    # covers only ~330 correlation times).
    assert stddev(1.0) == pytest.approx(1.0, rel=0.35)
    assert stddev(30.0) == pytest.approx(1.0, rel=0.35)


def test_time_going_backwards_is_refused() -> None:
    model = SensorModel("t", {"x": MetricSpec(baseline=1)}, seed=0)
    model.next(10)
    with pytest.raises(ValueError, match="backwards"):
        model.next(9)


def test_a_baseline_outside_the_sensor_range_is_refused() -> None:
    with pytest.raises(ValueError, match="outside"):
        MetricSpec(baseline=120, min=0, max=100)


def test_public_api_is_exported() -> None:
    import simulators

    assert sorted(simulators.__all__) == simulators.__all__
    for name in simulators.__all__:
        assert getattr(simulators, name) is not None, name
