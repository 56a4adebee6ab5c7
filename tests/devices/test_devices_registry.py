"""The device registry: online from the device's word and from its own reporting rhythm."""

from __future__ import annotations

from devices.conventions import Availability
from devices.model import Reading
from devices.presence import DeviceRegistry

S = 1_000_000_000


def reading(device="th", metric="temperature", value=21.5, unit="°C", ts=0):
    return Reading(device, metric, value, ts, unit)


def test_a_device_that_stops_reporting_goes_offline_after_three_intervals():
    registry = DeviceRegistry(silence_factor=3, min_silence_s=5)
    for t in range(0, 100, 10):  # every 10 s
        registry.observe([reading(ts=t * S)], "tasmota", t * S)
    assert registry.status("th", 95 * S).online
    assert registry.status("th", 90 * S + 29 * S).online
    status = registry.status("th", 90 * S + 31 * S)
    assert (status.online, status.reason) == (False, "silent")
    assert registry.silent(200 * S) == ["th"]


def test_the_devices_own_offline_wins_until_it_reports_again():
    registry = DeviceRegistry()
    registry.observe([reading()], "zigbee2mqtt", 1 * S)
    registry.observe_availability(Availability("th", False), "zigbee2mqtt", 2 * S)
    assert registry.status("th", 3 * S).reason == "availability"
    registry.observe([reading()], "zigbee2mqtt", 4 * S)
    assert registry.status("th", 5 * S).online


def test_min_silence_protects_a_device_seen_once_or_reporting_fast():
    registry = DeviceRegistry(min_silence_s=60)
    registry.observe([reading()], "", 0)
    assert registry.status("th", 59 * S).online
    assert not registry.status("th", 61 * S).online
    assert registry.status("nobody", 0).reason == "never_seen"


def test_snapshot_lists_metrics_units_and_convention_for_the_api():
    registry = DeviceRegistry()
    registry.observe([reading(), reading(metric="humidity", value=40.0, unit="%")], "esphome", S)
    (entry,) = registry.snapshot(2 * S)
    assert entry["convention"] == "esphome" and entry["online"] is True
    assert entry["metrics"] == {
        "humidity": {"unit": "%", "value": 40.0, "ts": 0},
        "temperature": {"unit": "°C", "value": 21.5, "ts": 0},
    }
    assert registry.tags("th") == {"convention": "esphome"}


def test_the_registry_is_bounded_and_forgets_the_longest_silent():
    registry = DeviceRegistry(max_devices=2)
    registry.observe([reading("a")], "", 1)
    registry.observe([reading("b")], "", 2)
    registry.observe([reading("c")], "", 3)
    assert set(registry.devices) == {"b", "c"} and registry.evicted == 1


def test_observe_reading_one_by_one_matches_observe_per_message():
    # The gateway's pipeline sees readings one at a time; readings of one message share ts.
    by_message, by_reading = DeviceRegistry(), DeviceRegistry()
    for t in range(0, 100, 10):
        message = [reading(ts=t * S), reading(metric="humidity", value=40.0, unit="%", ts=t * S)]
        by_message.observe(message, "tasmota", t * S)
        for r in message:
            by_reading.observe_reading(r, "tasmota", t * S)
    a, b = by_message.devices["th"], by_reading.devices["th"]
    assert (b.messages, b.interval_s, b.last_seen_ns) == (a.messages, a.interval_s, a.last_seen_ns)
    assert by_reading.snapshot(95 * S) == by_message.snapshot(95 * S)


def test_observe_reading_keeps_a_known_unit_when_a_later_reading_has_none():
    registry = DeviceRegistry()
    registry.observe_reading(reading(unit="°C", ts=1), "", 1)
    registry.observe_reading(reading(unit="", value=22.0, ts=2), "", 2)
    metric = registry.devices["th"].metrics["temperature"]
    assert (metric.unit, metric.last_value, metric.last_ts) == ("°C", 22.0, 2)
