"""All the way: an emulated serial sensor and MQTT devices in their own conventions, through
a real Mosquitto and the real ``outpost run`` process, into a real InfluxDB."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid

from tests.gateway.harness import REPO, Device, GatewayProcess, gateway_config, write_config


def test_serial_lines_paced_at_2000_per_second_all_land_in_influxdb(
    tmp_path, mosquitto, influxdb, influx_db, serial_device
):
    # Issue 5's benchmark: the sensor numbers its lines; every number must be found.
    rate, count = 2000, 2000
    device = f"bench-{uuid.uuid4().hex[:6]}"
    config = gateway_config(mosquitto.port, influxdb.url, influx_db)  # default inputs
    bridge = subprocess.Popen(
        [sys.executable, "-m", "gateway", "device", "serial", "--port", str(serial_device.link),
         "--device", device, "--profile", "bme280",
         "--host", "127.0.0.1", "--port-mqtt", str(mosquitto.port)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        with GatewayProcess(write_config(tmp_path / "outpost.yaml", config)), \
                Device(mosquitto.port, [f"devices/{device}/status"]) as watcher:  # fmt: skip
            assert watcher.collect(1, timeout=15)[0].payload == b"online"
            start = time.monotonic()
            for seq in range(count):
                delay = start + seq / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                serial_device.line({"t": 21.5, "p": 1013.2, "seq": seq})
            rows = influxdb.wait_for_count(influx_db, count, timeout=20, measurement="seq")
            temperature = influxdb.points(influx_db, "temperature")
    finally:
        bridge.terminate()
        bridge.communicate(timeout=10)
    assert sorted(int(r["fields"]["value"]) for r in rows) == list(range(count))
    assert {r["tags"]["device"] for r in rows} == {device}
    assert len(temperature) == count  # one point per line: nanosecond times never collide
    assert influxdb.field_types(influx_db, "temperature") == {"value": "float"}


def test_zigbee2mqtt_and_tasmota_payloads_land_in_influxdb(
    tmp_path, mosquitto, influxdb, influx_db
):
    config = gateway_config(
        mosquitto.port, influxdb.url, influx_db,
        inputs=[{"topic": "zigbee2mqtt/{device}", "format": "zigbee2mqtt"},
                {"topic": "tele/{device}/SENSOR", "format": "tasmota"},
                {"topic": "tele/{device}/STATE", "format": "tasmota"}],
    )  # fmt: skip
    with GatewayProcess(write_config(tmp_path / "outpost.yaml", config)), \
            Device(mosquitto.port) as device:  # fmt: skip
        # Zigbee2MQTT topics page: WSDCGQ01LM and LED1545G12 state messages
        device.publish("zigbee2mqtt/bathroom", '{"temperature": 27.34, "humidity": 44.72}')
        device.publish("zigbee2mqtt/desk_lamp",
                       '{"state": "ON", "brightness": 215, "color_temp": 325}')  # fmt: skip
        # Tasmota: tele/SENSOR of an AM2301 and tele/STATE of a plug
        device.publish("tele/th16/SENSOR", json.dumps(
            {"Time": "2019-11-03T19:34:28", "AM2301": {"Temperature": 21.6, "Humidity": 39.2},
             "TempUnit": "C"}))  # fmt: skip
        device.publish(
            "tele/plug/STATE",
            '{"Time":"2024-02-24T22:20:38","UptimeSec":611,'
            '"POWER":"OFF","Wifi":{"RSSI":44,"Signal":-78}}',
        )
        rows = influxdb.wait_for_count(influx_db, 10, timeout=15)
    got = {(r["measurement"], r["tags"]["device"]): r for r in rows}
    assert got[("temperature", "bathroom")]["fields"] == {"value": 27.34}
    assert got[("state", "desk_lamp")]["fields"] == {"state": True}
    assert got[("temperature", "th16")]["tags"] == {"device": "th16", "sensor": "AM2301"}
    assert got[("temperature", "th16")]["fields"] == {"value": 21.6}
    assert got[("power", "plug")]["fields"] == {"state": False}
    assert got[("wifi_signal", "plug")]["fields"] == {"value": -78}
    assert influxdb.field_types(influx_db, "brightness") == {"value": "float"}
