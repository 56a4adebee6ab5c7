"""Deadband/heartbeat, device times out of tolerance, and a clock that is not set yet."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

from devices.model import Reading
from gateway.ingest.deadband import Deadband
from gateway.ingest.timekeeping import TimePolicy
from tests.gateway.harness import Device, GatewayProcess, gateway_config, write_config

S = 1_000_000_000
NOW = 1_795_755_841 * S


def test_deadband_skips_small_changes_and_heartbeat_writes_anyway():
    band = Deadband(0.5, heartbeat=60)
    kept = [
        band.keep(Reading("d", "t", v, NOW + i * S))
        for i, v in enumerate([20.0, 20.3, 20.5, 20.6, 21.2, 21.2])
    ]
    assert kept == [True, False, False, True, True, False]
    assert band.keep(Reading("d", "t", 21.2, NOW + 66 * S))  # 60 s after the last written
    assert band.keep(Reading("other", "t", 21.2, NOW))  # per series
    switch = Deadband(0, None)
    assert [switch.keep(Reading("d", "on", v, NOW)) for v in (True, True, False, "x", "x")] == [
        True,
        False,
        True,
        True,
        False,
    ]


def test_time_policy_restamps_tags_or_refuses():
    future = Reading("d", "t", 1.0, NOW + 3600 * S)
    past = Reading("d", "t", 1.0, NOW - 40 * 86400 * S)
    fine = Reading("d", "t", 1.0, NOW - 10 * S)
    readings, reason = TimePolicy(300, 30 * 86400, "restamp").check([future, past, fine], NOW)
    assert reason is None and [r.ts for r in readings] == [NOW, NOW, NOW - 10 * S]
    readings, _ = TimePolicy(300, 30 * 86400, "tag").check([future, past, fine], NOW)
    assert [r.tags.get("ts_suspect") for r in readings] == ["future", "past", None]
    assert TimePolicy(300, None, "deadletter").check([fine, future], NOW) == ([], "ts_future")
    same = [fine]
    assert TimePolicy(300, None, "restamp").check(same, NOW)[0] is same  # no copy when fine


def test_deadband_and_time_policy_in_the_running_gateway(tmp_path, mosquitto, influxdb, influx_db):
    config = gateway_config(
        mosquitto.port,
        influxdb.url,
        influx_db,
        inputs=[
            {"topic": "sensors/{device}/{metric}", "deadband": 0.5, "heartbeat": "1h"},
            {"topic": "sensors/{device}", "format": "json", "time_field": "ts", "bad_time": "tag"},
            {
                "topic": "strict/{device}",
                "format": "json",
                "time_field": "ts",
                "bad_time": "deadletter",
            },
        ],
    )
    with (
        GatewayProcess(write_config(tmp_path / "outpost.yaml", config)),
        Device(mosquitto.port, subscribe=["outpost/deadletter"]) as device,
    ):
        for value in ("20.0", "20.2", "20.4", "21.0", "21.1"):
            device.publish("sensors/gh-1/temperature", value)
        in_a_year = int(time.time()) + 365 * 86400
        device.publish("sensors/gh-2", json.dumps({"co2": 400, "ts": in_a_year}))
        device.publish("strict/gh-3", json.dumps({"co2": 400, "ts": in_a_year}))
        [letter] = device.json_messages(1)
        device.publish("sensors/gh-1/done", "1")
        influxdb.wait_for_count(influx_db, 1, measurement="done")
    assert [r["fields"]["value"] for r in influxdb.points(influx_db, "temperature")] == [20, 21]
    [co2] = influxdb.points(influx_db, "co2")
    assert co2["tags"] == {"device": "gh-2", "ts_suspect": "future"}
    assert co2["time"] == in_a_year * S
    assert (letter["topic"], letter["reason"]) == ("strict/gh-3", "ts_future")


def test_readings_wait_for_the_clock_and_get_their_true_arrival_time(
    tmp_path, mosquitto, influxdb, influx_db
):
    # The gateway is told the clock is not valid until 8 s from now: as on a Pi before NTP
    # (long enough that a slow start on a loaded machine still sees the clock unset).
    valid_after = datetime.fromtimestamp(int(time.time()) + 8, UTC)
    config = gateway_config(
        mosquitto.port, influxdb.url, influx_db, clock={"valid_after": valid_after.isoformat()}
    )
    with (
        GatewayProcess(write_config(tmp_path / "outpost.yaml", config)),
        Device(mosquitto.port) as device,
    ):
        sent = time.time_ns()
        device.publish("sensors/gh-1/temperature", "21.5")
        device.publish("sensors/gh-1", json.dumps({"humidity": 40, "ts": 1795755841}))
        time.sleep(1.0)
        held = influxdb.points(influx_db, "temperature") if influxdb.count(influx_db) else []
        rows = influxdb.wait_for_count(influx_db, 2, timeout=10)
    assert held == []  # nothing stamped with a clock that was not set
    by_metric = {r["measurement"]: r for r in rows}
    assert abs(by_metric["temperature"]["time"] - sent) < 0.5 * S  # the true arrival time
    assert by_metric["humidity"]["time"] == 1795755841 * S  # own timestamp: never held
