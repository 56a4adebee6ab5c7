"""Sensor profiles: aliases, scale, and implausible values dropped with a counter."""

from __future__ import annotations

from collections import Counter

import pytest

from devices.profiles import PROFILES, FrameMapper, Profile, field, map_frame, temperature

TS = 1_795_755_841_000_000_000


def values(readings):
    return {r.metric: (r.value, r.unit) for r in readings}


def test_a_dht22_humidity_of_140_percent_is_dropped_and_counted():
    counters: Counter[str] = Counter()
    readings = map_frame({"t": 21.3, "h": 140}, "dht22", "bench-1", TS, counters)
    assert values(readings) == {"temperature": (21.3, "°C")}
    assert counters["out_of_range:humidity"] == 1


@pytest.mark.parametrize(
    ("profile", "frame", "expected"),
    [
        ("dht22", {"temp": 22, "hum": "45.5"}, {"temperature": (22.0, "°C"),
                                                "humidity": (45.5, "%")}),
        ("bme280", {"T": 20.5, "RH": 50, "P": 1013.25},
         {"temperature": (20.5, "°C"), "humidity": (50.0, "%"), "pressure": (1013.25, "hPa")}),
        ("ds18b20", {"temperature": -55}, {"temperature": (-55.0, "°C")}),
        ("sht31", {"temperature": 124.9, "humidity": 0}, {"temperature": (124.9, "°C"),
                                                          "humidity": (0.0, "%")}),
    ],
)  # fmt: skip
def test_shipped_profiles_map_aliases_to_metrics_with_units(profile, frame, expected):
    readings = map_frame(frame, profile, "bench-1", TS)
    assert values(readings) == expected
    assert all(r.device == "bench-1" and r.ts == TS for r in readings)


@pytest.mark.parametrize(
    ("profile", "frame", "dropped"),
    [
        ("dht22", {"t": 80.5}, "temperature"),  # DHT22 stops at 80 °C
        ("bme280", {"p": 200}, "pressure"),
        ("ds18b20", {"t": 126}, "temperature"),
        ("ds18b20", {"t": 85.0001 + 41}, "temperature"),
        ("sht31", {"rh": -0.1}, "humidity"),
    ],
)
def test_datasheet_ranges_drop_impossible_values(profile, frame, dropped):
    counters: Counter[str] = Counter()
    assert map_frame(frame, profile, "d", TS, counters) == []
    assert counters[f"out_of_range:{dropped}"] == 1


def test_unknown_fields_pass_through_and_are_counted_as_unmapped():
    counters: Counter[str] = Counter()
    readings = map_frame({"t": 20, "seq": 17, "state": "ok"}, "ds18b20", "d", TS, counters)
    assert values(readings) == {"temperature": (20.0, "°C"), "seq": (17.0, ""),
                                "state": ("ok", "")}  # fmt: skip
    assert counters["unmapped"] == 2


def test_without_a_profile_every_scalar_passes_through():
    readings = map_frame({"a": 1, "b": True, "c": "x", "n": None, "o": {"x": 1}}, None, "d", TS)
    assert values(readings) == {"a": (1.0, ""), "b": (True, ""), "c": ("x", "")}


def test_non_numbers_for_a_numeric_field_are_counted():
    counters: Counter[str] = Counter()
    assert map_frame({"t": "hot", "h": True}, "dht22", "d", TS, counters) == []
    assert counters == Counter({"not_a_number:temperature": 1, "not_a_number:humidity": 1})


def test_a_new_profile_is_a_few_lines_with_scale():
    # A sensor that sends tenths of a degree and a CO2 figure in ppm
    custom = Profile("th10", (temperature(scale=0.1), field("co2", "ppm", min=400, max=5000)))
    readings = FrameMapper("d", custom).map({"t": 215, "co2": 612}, TS)
    assert values(readings) == {"temperature": (21.5, "°C"), "co2": (612.0, "ppm")}


def test_profile_names_are_case_insensitive_and_unknown_ones_are_listed():
    assert map_frame({"t": 1}, "DHT22", "d", TS)[0].metric == "temperature"
    with pytest.raises(KeyError, match="dht22"):
        map_frame({}, "nope", "d", TS)
    assert set(PROFILES) == {"dht22", "bme280", "ds18b20", "sht31"}
