"""The real ``outpost run`` with nothing but config: a serial sensor on a pty, a Zigbee2MQTT
sensor and a Tasmota plug, into InfluxDB, the device list and the metrics."""

from __future__ import annotations

import json
import time
import urllib.request
import uuid

from tests.gateway.harness import Device, GatewayProcess, gateway_config, write_config


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read()


def test_serial_zigbee2mqtt_and_tasmota_devices_from_config_alone(
    tmp_path, mosquitto, influxdb, influx_db, serial_device
):
    device = f"gh-{uuid.uuid4().hex[:6]}"
    config = gateway_config(
        mosquitto.port, influxdb.url, influx_db,
        inputs=[{"topic": "sensors/{device}", "format": "json", "time_field": "ts"},
                {"topic": "zigbee2mqtt/{device}", "format": "zigbee2mqtt"},
                {"topic": "tele/{device}/SENSOR", "format": "tasmota"}],
        serial=[{"port": str(serial_device.link), "device": device, "profile": "dht22"}],
        devices={"plug": {"convention": "tasmota", "commands": {"POWER": {"type": "bool"}}}},
    )  # fmt: skip
    api = f"http://{config['http']['listen']}"
    with GatewayProcess(write_config(tmp_path / "outpost.yaml", config)) as gateway, \
            Device(mosquitto.port, [f"devices/{device}/status"]) as watcher:  # fmt: skip
        assert watcher.collect(1, timeout=15)[0].payload == b"online"
        for seq in range(3):
            serial_device.line({"t": 21.5, "h": 40 + seq, "seq": seq})
        watcher.publish("zigbee2mqtt/bathroom", '{"temperature": 27.34, "humidity": 44.72}')
        watcher.publish("zigbee2mqtt/bathroom/availability", '{"state": "online"}')
        watcher.publish("tele/plug/LWT", "Offline")
        rows = influxdb.wait_for_count(influx_db, 3, timeout=15, measurement="seq")
        assert sorted(r["fields"]["value"] for r in rows) == [0, 1, 2]
        deadline = time.monotonic() + 10
        while True:
            devices = {d["device"]: d for d in json.loads(get(f"{api}/api/v1/devices"))["devices"]}
            if {"bathroom", "plug", device} <= set(devices) and devices[device]["metrics"]:
                break
            assert time.monotonic() < deadline, devices
            time.sleep(0.1)
        metrics_text = get(f"{api}/metrics").decode()
        gateway.stop()
    assert devices[device]["online"] is True and devices[device]["convention"] == "outpost"
    assert devices[device]["metrics"]["humidity"]["unit"] == "%"
    temperature = devices["bathroom"]["metrics"]["temperature"]
    assert (temperature["value"], temperature["unit"]) == (27.34, "°C")
    bathroom = devices["bathroom"]
    assert (bathroom["online"], bathroom["convention"]) == (True, "zigbee2mqtt")
    assert (devices["plug"]["online"], devices["plug"]["online_reason"]) == (False, "availability")
    assert 'outpost_devices{convention="zigbee2mqtt",state="online"} 1.0' in metrics_text
    assert f'outpost_serial_events_total{{device="{device}",event="frames_published"}} 3.0' in (
        metrics_text
    )
    # Stopping the gateway stops its bridge, which says offline on the way out.
    assert [m.payload for m in watcher.collect(1, timeout=5)] == [b"offline"]
