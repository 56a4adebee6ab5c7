"""Readings published by a real MQTT client land in a real InfluxDB (DESIGN.md §5)."""

from __future__ import annotations

import json
import signal
import time

from tests.gateway.harness import Device, GatewayProcess, gateway_config, write_config

JSON_TS = 1795755841  # 2026-11-27T05:04:01Z, epoch seconds as a sensor sends it


def test_every_format_lands_with_measurement_tags_field_type_and_time(
    tmp_path, mosquitto, influxdb, influx_db
):
    config = gateway_config(
        mosquitto.port,
        influxdb.url,
        influx_db,
        inputs=[
            {"topic": "sensors/{device}/{metric}", "format": "value", "tags": {"site": "bench"}},
            {"topic": "sensors/{device}", "format": "json", "time_field": "ts"},
            {"topic": "telegraf/{device}", "format": "influx"},
        ],
    )
    with (
        GatewayProcess(write_config(tmp_path / "outpost.yaml", config)),
        Device(mosquitto.port) as device,
    ):
        before = time.time_ns()
        device.publish("sensors/gh-1/temperature", "21.5")
        device.publish("sensors/gh-1/door", "true")
        device.publish("sensors/gh-1/mode", '"auto"')
        device.publish("sensors/gh-1/fan", "40")
        device.publish(
            "sensors/gh-2",
            json.dumps({"temperature": 19.25, "humidity": 40, "env": {"co2": 415}, "ts": JSON_TS}),
        )
        device.publish(
            "telegraf/gh-3",
            f"climate,zone=north temperature=20.5,count=3i {JSON_TS * 10**9 + 123456789}",
        )
        rows = influxdb.wait_for_count(influx_db, 9, timeout=15)
        after = time.time_ns()

    by_key = {(r["measurement"], r["tags"]["device"]): r for r in rows}
    temp = by_key[("temperature", "gh-1")]
    assert temp["fields"] == {"value": 21.5}
    assert temp["tags"] == {"device": "gh-1", "site": "bench"}
    assert before <= temp["time"] <= after  # value payloads carry no time: arrival time
    assert by_key[("door", "gh-1")]["fields"] == {"state": True}
    assert by_key[("mode", "gh-1")]["fields"] == {"text": "auto"}
    assert by_key[("fan", "gh-1")]["fields"] == {"value": 40}
    assert influxdb.field_types(influx_db, "fan") == {"value": "float"}  # 40, not 40i
    assert influxdb.field_types(influx_db, "door") == {"state": "boolean"}
    assert influxdb.field_types(influx_db, "mode") == {"text": "string"}

    gh2 = {m: by_key[(m, "gh-2")] for m in ("temperature", "humidity", "env_co2")}
    assert gh2["temperature"]["fields"] == {"value": 19.25}
    assert gh2["env_co2"]["fields"] == {"value": 415}
    assert {r["time"] for r in gh2.values()} == {JSON_TS * 10**9}
    assert by_key[("climate_temperature", "gh-3")]["tags"] == {"device": "gh-3", "zone": "north"}
    assert by_key[("climate_count", "gh-3")]["time"] == JSON_TS * 10**9 + 123456789


def test_same_reading_twice_is_one_point(tmp_path, mosquitto, influxdb, influx_db):
    config = gateway_config(mosquitto.port, influxdb.url, influx_db)
    payload = json.dumps({"temperature": 21.5, "ts": JSON_TS})
    with (
        GatewayProcess(write_config(tmp_path / "outpost.yaml", config)),
        Device(mosquitto.port) as device,
    ):
        device.publish("sensors/gh-1", payload)
        device.publish("sensors/gh-1", payload)
        device.publish("sensors/gh-1/marker", "1")
        influxdb.wait_for_count(influx_db, 1, measurement="marker")
    assert len(influxdb.points(influx_db, "temperature")) == 1


def test_bad_input_is_dead_lettered_with_reason_and_gateway_keeps_going(
    tmp_path, mosquitto, influxdb, influx_db
):
    config = gateway_config(
        mosquitto.port,
        influxdb.url,
        influx_db,
        inputs=[
            {"topic": "sensors/{device}/{metric}", "format": "value"},
            {"topic": "sensors/{device}", "format": "json", "time_field": "ts"},
        ],
    )
    bad = [
        ("sensors/gh-1", b"{not json", "bad_json"),
        ("sensors/gh-1", b"\xff\xfe\x00garbage", "bad_utf8"),
        ("sensors/gh-1/temperature", b"NaN", "non_finite"),
        ("sensors/gh-1/temperature", b"-Infinity", "non_finite"),
        ("sensors/gh-1", b'{"temperature": 1e999}', "non_finite"),
        ("sensors/gh-1", b'{"temperature": NaN}', "non_finite"),
        ("sensors/gh-1", b"[" * 30000 + b"]" * 30000, "too_deep"),  # inside the 64 KiB limit
        ("sensors/gh-1", b'{"t": ' + b"[" * 400 + b"]" * 400 + b"}", "too_deep"),
        ("sensors/gh-1", b'{"n": ' + b"9" * 5000 + b"}", "bad_json"),
        ("sensors/gh-1/temperature", b"", "empty_payload"),
        ("sensors/gh-1", b'{"x": 1}' + b" " * 70000, "too_large"),
        ("sensors/gh-1", b'{"temperature": 20, "ts": "yesterday"}', "bad_timestamp"),
    ]
    with (
        GatewayProcess(write_config(tmp_path / "outpost.yaml", config)) as gateway,
        Device(mosquitto.port, subscribe=["outpost/deadletter"]) as device,
    ):
        for topic, payload, _ in bad:
            device.publish(topic, payload)
            device.publish("sensors/gh-1/ok", "1")  # valid readings in between all land
        letters = device.json_messages(len(bad), timeout=15)
        influxdb.wait_for_count(influx_db, 1, measurement="ok")
        assert gateway.proc.poll() is None
    assert [(d["topic"], d["reason"]) for d in letters] == [(t, r) for t, _, r in bad]
    for letter in letters:
        assert letter["ts"].endswith("Z") and letter["detail"]
    assert letters[1]["encoding"] == "base64"
    assert letters[10]["truncated"] is True and letters[10]["size"] == 70008
    # Every "ok" reading survived (identical arrival-time points may merge, so count >= 1)
    # and nothing from the bad payloads was written.
    assert set(influxdb.measurements(influx_db)) == {"ok"}
    log = gateway.log()
    assert "dead letter bad_json" in log
    assert log.count("dead letter non_finite") == 1  # once per reason per minute


def test_point_influxdb_refuses_is_dead_lettered_alone(tmp_path, mosquitto, influxdb, influx_db):
    # A field written as a string by someone else makes InfluxDB refuse our float for it
    # (field types are fixed per shard, so the old point is written at the current time).
    influxdb.create_database(influx_db)
    influxdb.write(influx_db, f'temperature,device=legacy value="warm" {time.time_ns()}')
    config = gateway_config(
        mosquitto.port, influxdb.url, influx_db, influx={"flush_interval": "2s"}
    )
    with (
        GatewayProcess(write_config(tmp_path / "outpost.yaml", config)),
        Device(mosquitto.port, subscribe=["outpost/deadletter"]) as device,
    ):
        for i in range(20):
            device.publish(f"sensors/gh-{i}/humidity", str(40 + i))
            if i == 10:
                device.publish("sensors/legacy/temperature", "21.5")
        letters = device.json_messages(1, timeout=15)
        rows = influxdb.wait_for_count(influx_db, 20, measurement="humidity")
    assert len(rows) == 20
    assert letters[0]["reason"] == "influx_rejected"
    assert letters[0]["topic"] == "sensors/legacy/temperature"
    assert "field type conflict" in letters[0]["detail"]


def test_sigterm_flushes_pending_batch(tmp_path, mosquitto, influxdb, influx_db):
    # A long flush interval and a large batch: only the shutdown flush can write these.
    config = gateway_config(
        mosquitto.port,
        influxdb.url,
        influx_db,
        influx={"flush_interval": "1h", "batch_size": 100000},
        inputs=[{"topic": "sensors/{device}/{metric}", "qos": 0}],
    )
    gateway = GatewayProcess(write_config(tmp_path / "outpost.yaml", config)).start()
    with Device(mosquitto.port) as device:
        for i in range(500):
            device.client.publish("sensors/gh-1/seq", str(i), qos=0)
        device.publish("sensors/gh-1/last", "1", qos=1)
        gateway.wait_log("writing to")
        time.sleep(0.5)
        assert not _db_exists(influxdb, influx_db) or influxdb.measurements(influx_db) == []
        assert gateway.stop(signal.SIGTERM) == 0
    values = sorted(r["fields"]["value"] for r in influxdb.points(influx_db, "seq"))
    assert values == list(range(500))
    assert "stopped" in gateway.log()


def _db_exists(influxdb, name):
    answer = influxdb.query("SHOW DATABASES")
    return [name] in answer["results"][0]["series"][0].get("values", [])


def test_qos1_message_is_acknowledged_only_after_influxdb_stored_it(
    tmp_path, mosquitto, influxdb, influx_db, fault_proxy
):
    # InfluxDB answers 503 for a while: the readings stay unacknowledged, the gateway is
    # killed, and a new gateway with the same client id gets them again from the broker.
    fault_proxy.set_fault(status=503, count=1000)
    config = gateway_config(mosquitto.port, fault_proxy.url, influx_db)
    config["mqtt"]["client_id"] = "outpost-ack-test"
    path = write_config(tmp_path / "outpost.yaml", config)
    first = GatewayProcess(path).start()
    with Device(mosquitto.port) as device:
        for i in range(50):
            device.publish("sensors/gh-1/seq", str(i))
        first.wait_log("InfluxDB write failed", timeout=15)
        first.stop(signal.SIGKILL)
    fault_proxy.clear()
    with GatewayProcess(path):
        rows = influxdb.wait_for_count(influx_db, 50, measurement="seq", timeout=20)
    assert sorted(r["fields"]["value"] for r in rows) == list(range(50))


def test_a_few_qos0_readings_are_written_within_flush_interval(
    tmp_path, mosquitto, influxdb, influx_db
):
    config = gateway_config(
        mosquitto.port,
        influxdb.url,
        influx_db,
        influx={"flush_interval": "500ms"},
        inputs=[{"topic": "sensors/{device}/{metric}", "qos": 0}],
    )
    with (
        GatewayProcess(write_config(tmp_path / "outpost.yaml", config)),
        Device(mosquitto.port) as device,
    ):
        device.publish("sensors/gh-1/temperature", "21.5", qos=0)
        rows = influxdb.wait_for_count(influx_db, 1, timeout=5)
    assert rows[0]["fields"] == {"value": 21.5}


def test_device_tags_from_config_reach_influxdb(tmp_path, mosquitto, influxdb, influx_db):
    config = gateway_config(mosquitto.port, influxdb.url, influx_db,
                            devices={"gh-1": {"tags": {"zone": "north", "site": "farm"}}},
                            inputs=[{"topic": "sensors/{device}/{metric}",
                                     "tags": {"site": "input-site"}}])
    with GatewayProcess(write_config(tmp_path / "outpost.yaml", config)), \
            Device(mosquitto.port) as device:
        device.publish("sensors/gh-1/temperature", "21.5")
        device.publish("sensors/gh-2/temperature", "22.5")
        rows = influxdb.wait_for_count(influx_db, 2)
    tags = {r["tags"]["device"]: r["tags"] for r in rows}
    # The input's tags are the reading's own: they win over the device's.
    assert tags["gh-1"] == {"device": "gh-1", "zone": "north", "site": "input-site"}
    assert tags["gh-2"] == {"device": "gh-2", "site": "input-site"}
