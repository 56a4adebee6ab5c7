"""DevicesRuntime without a broker: registry wiring, availability routing, snapshot, metrics."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest

from devices.model import Reading
from gateway.config import LoadedConfig
from gateway.config.loader import parse_config
from gateway.config.schema import Config
from gateway.devices_runtime import DevicesRuntime
from gateway.metrics import Metrics
from rules import rfc3339

S = 1_000_000_000
T0 = 1_795_755_841 * S  # 2026-11-27T…


class FakeClock:
    def __init__(self, now: int = T0) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def loaded(**config: Any) -> LoadedConfig:
    return LoadedConfig(Config.model_validate(config), None, Path("/tmp"))


def runtime(clock: FakeClock | None = None, **config: Any) -> tuple[DevicesRuntime, Metrics]:
    metrics = Metrics()
    return DevicesRuntime(loaded(**config), metrics, clock=clock or FakeClock()), metrics


Z2M_AND_TASMOTA = {
    "inputs": [
        {"topic": "sensors/{device}", "format": "json", "time_field": "ts"},
        {"topic": "zigbee2mqtt/{device}", "format": "zigbee2mqtt"},
        {"topic": "tele/{device}/SENSOR", "format": "tasmota"},
    ],
    "devices": {"lamp": {"convention": "zigbee2mqtt", "tags": {"room": "hall"}}},
}


def entry_of(rt: DevicesRuntime, device: str) -> dict[str, Any]:
    return next(e for e in rt.snapshot() if e["device"] == device)


def reading(device: str, metric: str, value: float, topic: str, ts: int = T0, unit: str = ""):
    return Reading(device, metric, value, ts, unit, {}, topic)


# --- subscriptions ---------------------------------------------------------------------------


def test_each_convention_in_use_adds_its_availability_filter_at_qos_0():
    rt, _ = runtime(**Z2M_AND_TASMOTA)
    assert rt.subscriptions() == [
        ("zigbee2mqtt/+/availability", 0),
        ("tele/+/LWT", 0),
        ("devices/+/status", 0),  # inputs under sensors/ speak the outpost convention
    ]


def test_the_availability_filter_follows_the_inputs_base_topic():
    rt, _ = runtime(inputs=[{"topic": "zb/{device}", "format": "zigbee2mqtt"}])
    assert rt.subscriptions() == [("zb/+/availability", 0)]


def test_a_devices_entry_brings_its_convention_without_an_input():
    rt, _ = runtime(
        inputs=[{"topic": "zigbee2mqtt/{device}", "format": "zigbee2mqtt"}],
        devices={"plug": {"convention": "tasmota"}, "node": {"convention": "esphome"}},
    )
    assert rt.subscriptions() == [
        ("zigbee2mqtt/+/availability", 0),
        ("+/status", 0),
        ("tele/+/LWT", 0),
    ]


def test_serial_bridges_bring_the_outpost_status_topic(tmp_path):
    rt, _ = runtime(
        inputs=[{"topic": "zigbee2mqtt/{device}", "format": "zigbee2mqtt"}],
        serial=[{"port": str(tmp_path / "tty"), "device": "bench-1"}],
    )
    assert ("devices/+/status", 0) in rt.subscriptions()


# --- readings --------------------------------------------------------------------------------


def test_observe_records_last_seen_metrics_and_the_reporting_interval():
    clock = FakeClock()
    rt, _ = runtime(clock, **Z2M_AND_TASMOTA)
    for i in range(5):
        clock.now = T0 + i * 10 * S
        ts = clock.now
        rt.observe(reading("bathroom", "temperature", 21.0 + i, "zigbee2mqtt/bathroom", ts, "°C"))
        rt.observe(reading("bathroom", "humidity", 40.0, "zigbee2mqtt/bathroom", ts, "%"))
    entry = entry_of(rt, "bathroom")
    assert entry["device"] == "bathroom" and entry["convention"] == "zigbee2mqtt"
    assert entry["online"] is True and entry["online_reason"] == "reporting"
    assert entry["last_seen"] == rfc3339(T0 + 40 * S)
    assert entry["reporting_interval_s"] == 10.0
    assert entry["metrics"] == {
        "humidity": {"value": 40.0, "unit": "%", "ts": rfc3339(T0 + 40 * S)},
        "temperature": {"value": 25.0, "unit": "°C", "ts": rfc3339(T0 + 40 * S)},
    }


def test_a_device_that_falls_silent_goes_offline():
    clock = FakeClock()
    rt, _ = runtime(clock, **Z2M_AND_TASMOTA)
    for i in range(5):
        clock.now = T0 + i * 30 * S
        rt.observe(reading("th16", "temperature", 21.0, "tele/th16/SENSOR", clock.now))
    clock.now += 91 * S  # three intervals of 30 s
    entry = entry_of(rt, "th16")
    assert (entry["online"], entry["online_reason"]) == (False, "silent")


def test_the_convention_comes_from_the_devices_entry_then_the_serial_list_then_the_input():
    rt, _ = runtime(**Z2M_AND_TASMOTA, serial=[{"port": "/dev/ttyUSB0", "device": "bench-1"}])
    rt.observe(reading("lamp", "brightness", 200.0, "zigbee2mqtt/lamp"))
    rt.observe(reading("bench-1", "temperature", 21.0, "sensors/bench-1"))
    rt.observe(reading("gh-1", "temperature", 21.0, "sensors/gh-1"))
    rt.observe(reading("th16", "temperature", 21.0, "tele/th16/SENSOR"))
    conventions = {e["device"]: e["convention"] for e in rt.snapshot()}
    assert conventions == {
        "bench-1": "outpost", "gh-1": "json", "lamp": "zigbee2mqtt", "th16": "tasmota"}  # fmt: skip


def test_serial_devices_get_their_units_from_the_profile():
    rt, _ = runtime(
        inputs=[{"topic": "sensors/{device}", "format": "json"}],
        serial=[{"port": "/dev/ttyUSB0", "device": "bench-1", "profile": "bme280"}],
    )
    rt.observe(reading("bench-1", "pressure", 1013.2, "sensors/bench-1"))  # JSON carries no unit
    rt.observe(reading("bench-1", "seq", 7.0, "sensors/bench-1"))
    (entry,) = rt.snapshot()
    assert entry["metrics"]["pressure"]["unit"] == "hPa"
    assert entry["metrics"]["seq"]["unit"] == ""
    assert entry["serial_port"] == "/dev/ttyUSB0"


def test_configured_devices_are_listed_before_they_are_seen():
    rt, _ = runtime(**Z2M_AND_TASMOTA, serial=[{"port": "/dev/ttyACM0", "device": "gh-serial"}])
    entries = {e["device"]: e for e in rt.snapshot()}
    assert entries["lamp"] == {
        "device": "lamp", "convention": "zigbee2mqtt", "online": False,
        "online_reason": "never_seen", "last_seen": None, "first_seen": None,
        "reporting_interval_s": None, "metrics": {},
    }  # fmt: skip
    assert entries["gh-serial"]["convention"] == "outpost"


def test_tags_for_rules_carry_the_convention_and_the_devices_entry_tags():
    rt, _ = runtime(**Z2M_AND_TASMOTA)
    rt.observe(reading("th16", "temperature", 21.0, "tele/th16/SENSOR"))
    assert rt.tags_for("lamp") == {"convention": "zigbee2mqtt", "room": "hall"}
    assert rt.tags_for("th16") == {"convention": "tasmota"}
    assert rt.tags_for("nobody") == {}


# --- availability ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic", "payload", "device", "online"),
    [
        ("zigbee2mqtt/lamp/availability", b'{"state":"offline"}', "lamp", False),
        ("zigbee2mqtt/lamp/availability", b"online", "lamp", True),  # legacy plain text
        ("tele/th16/LWT", b"Offline", "th16", False),
        ("devices/gh-1/status", b"online", "gh-1", True),
    ],
)
def test_availability_messages_set_the_devices_online_state(topic, payload, device, online):
    rt, _ = runtime(**Z2M_AND_TASMOTA)
    rt.on_message(topic, payload)
    entry = entry_of(rt, device)
    assert (entry["online"], entry["online_reason"]) == (online, "availability")


def test_a_devices_offline_wins_over_its_recent_readings_until_it_reports_again():
    clock = FakeClock()
    rt, _ = runtime(clock, **Z2M_AND_TASMOTA)
    rt.observe(reading("lamp", "brightness", 200.0, "zigbee2mqtt/lamp"))
    clock.now += S
    rt.on_message("zigbee2mqtt/lamp/availability", b'{"state":"offline"}')
    assert rt.snapshot()[0]["online"] is False
    clock.now += S
    rt.observe(reading("lamp", "brightness", 100.0, "zigbee2mqtt/lamp", clock.now))
    assert rt.snapshot()[0]["online"] is True


def test_bad_availability_messages_are_counted_not_raised():
    rt, _ = runtime(**Z2M_AND_TASMOTA)
    rt.on_message("tele/th16/LWT", b"\xff\xfe")  # not UTF-8
    rt.on_message("zigbee2mqtt/lamp/availability", b'{"state": "sleeping"}')  # neither
    rt.on_message("nothing/of/ours", b"online")
    assert rt.availability_errors == 1
    assert [e["device"] for e in rt.snapshot()] == ["lamp"]  # configured, never seen
    assert rt.snapshot()[0]["online_reason"] == "never_seen"


def test_intercept_keeps_availability_topics_from_the_pipeline_and_passes_the_rest():
    rt, _ = runtime(**Z2M_AND_TASMOTA)
    passed: list[tuple[str, object]] = []
    route = rt.intercept(lambda topic, payload, token: passed.append((topic, token)))
    route("zigbee2mqtt/lamp", b'{"brightness": 1}', (1, 1, 1))
    route("zigbee2mqtt/lamp/availability", b"offline", None)  # ours alone: not passed on
    route("devices/gh-1/status", b"online", None)
    route("sensors/gh-1", b'{"t": 1}', None)
    assert passed == [("zigbee2mqtt/lamp", (1, 1, 1)), ("sensors/gh-1", None)]
    assert {e["device"]: e["online"] for e in rt.snapshot()} == {"gh-1": True, "lamp": False}


def test_intercept_passes_on_an_availability_message_an_input_also_asked_for():
    rt, _ = runtime(inputs=[{"topic": "zigbee2mqtt/#", "format": "zigbee2mqtt"}])
    passed: list[str] = []
    route = rt.intercept(lambda topic, payload, token: passed.append(topic))
    route("zigbee2mqtt/lamp/availability", b"offline", None)
    route("tele/x/LWT", b"Online", (1, 7, 1))  # not ours: token or not, the pipeline decides
    assert passed == ["zigbee2mqtt/lamp/availability", "tele/x/LWT"]
    assert rt.snapshot()[0]["online"] is False


async def test_availability_from_another_thread_is_applied_on_the_event_loop():
    rt, _ = runtime(**Z2M_AND_TASMOTA)  # built inside the loop: bound to it
    applied_on: list[int] = []
    original = rt._apply

    def spy(*args: Any) -> None:
        applied_on.append(threading.get_ident())
        original(*args)

    rt._apply = spy  # type: ignore[method-assign]
    thread = threading.Thread(target=rt.on_message, args=("tele/th16/LWT", b"Online"))
    thread.start()
    thread.join()
    for _ in range(100):
        if applied_on:
            break
        await asyncio.sleep(0.01)
    assert applied_on == [threading.get_ident()]
    assert entry_of(rt, "th16")["online_reason"] == "availability"


# --- metrics and checks ----------------------------------------------------------------------


def test_prometheus_shows_devices_online_and_offline_by_convention(tmp_path):
    clock = FakeClock()
    rt, metrics = runtime(
        clock, **Z2M_AND_TASMOTA, serial=[{"port": str(tmp_path / "tty"), "device": "bench-1"}]
    )
    rt.observe(reading("bathroom", "temperature", 21.0, "zigbee2mqtt/bathroom"))
    rt.on_message("zigbee2mqtt/lamp/availability", b'{"state":"offline"}')
    rt.observe(reading("th16", "temperature", 21.0, "tele/th16/SENSOR"))
    rt.bridges[0].counters["lines"] += 3
    text = generate_latest(metrics.registry).decode()
    assert 'outpost_devices{convention="zigbee2mqtt",state="online"} 1.0' in text
    assert 'outpost_devices{convention="zigbee2mqtt",state="offline"} 1.0' in text
    assert 'outpost_devices{convention="tasmota",state="online"} 1.0' in text
    assert 'outpost_device_online{device="lamp"} 0.0' in text
    assert f'outpost_device_last_seen_timestamp_seconds{{device="th16"}} {T0 / S:.9e}' in text
    assert f'outpost_serial_port_open{{device="bench-1",port="{tmp_path / "tty"}"}} 0.0' in text
    assert 'outpost_serial_events_total{device="bench-1",event="lines"} 3.0' in text
    names = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")}
    assert all(name.startswith("outpost_") for name in names)


def test_a_serial_device_no_input_reads_is_warned_about(tmp_path):
    rt, _ = runtime(
        inputs=[{"topic": "zigbee2mqtt/{device}", "format": "zigbee2mqtt"}],
        serial=[{"port": str(tmp_path / "tty"), "device": "bench-1"}],
    )
    assert len(rt.warnings) == 1 and "sensors/bench-1" in rt.warnings[0]
    rt, _ = runtime(serial=[{"port": str(tmp_path / "tty"), "device": "bench-1"}])  # defaults
    assert rt.warnings == []


def test_the_serial_bridges_come_from_the_config_with_relative_ports_resolved(tmp_path):
    text = "serial:\n  - {port: ./tty0, device: gh-1, baud: 115200, framing: kv, profile: dht22}\n"
    config = parse_config(text, str(tmp_path / "outpost.yaml"), tmp_path, {})
    rt = DevicesRuntime(config, Metrics())
    (bridge,) = rt.bridges
    assert bridge.config.port == str(tmp_path / "tty0")
    assert (bridge.config.device, bridge.config.baud, bridge.config.framing) == (
        "gh-1", 115200, "kv")  # fmt: skip


async def test_run_without_serial_entries_returns_when_stopped():
    rt, _ = runtime()
    stop = asyncio.Event()
    task = asyncio.create_task(rt.run(stop))
    await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, 1)
