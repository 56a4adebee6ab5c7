"""DevicesRuntime against the real things: a real Mosquitto, a pty serial sensor, paho clients."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from pathlib import Path
from typing import Any

from gateway.config.loader import parse_config
from gateway.devices_runtime import DevicesRuntime
from gateway.metrics import Metrics
from gateway.mqtt.subscriber import MqttSource
from tests.devices.conftest import until


def config_text(port: int, body: str) -> str:
    return f"mqtt: {{host: 127.0.0.1, port: {port}, client_id: gw-{uuid.uuid4().hex[:8]}}}\n" + body


@contextlib.asynccontextmanager
async def running(rt: DevicesRuntime):
    stop = asyncio.Event()
    task = asyncio.create_task(rt.run(stop))
    try:
        yield stop
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


async def test_the_gateway_bridges_its_serial_sensors_to_mqtt_with_a_retained_status(
    tmp_path: Path, mosquitto, serial_device, subscriber_factory
):
    device = f"gh-{uuid.uuid4().hex[:6]}"
    text = config_text(
        mosquitto.port,
        f"serial:\n  - {{port: {serial_device.link}, device: {device}, profile: bme280}}\n",
    )
    rt = DevicesRuntime(parse_config(text, str(tmp_path / "outpost.yaml"), tmp_path, {}),
                        Metrics())  # fmt: skip
    readings = subscriber_factory(mosquitto.port, f"sensors/{device}")
    async with running(rt):
        bridge = rt.bridges[0]
        await until(bridge.port_open.is_set, timeout=10, what="port open")
        await until(bridge.listening.is_set, timeout=10, what="connected to the broker")
        for seq in range(3):
            serial_device.line({"t": 21.5 + seq, "p": 1013.2, "seq": seq})
        await until(lambda: len(readings.on(f"sensors/{device}")) == 3, what="three readings")
        bodies = [m.json() for m in readings.on(f"sensors/{device}")]
        assert [b["seq"] for b in bodies] == [0.0, 1.0, 2.0]
        assert [b["temperature"] for b in bodies] == [21.5, 22.5, 23.5]
        assert all(b["pressure"] == 1013.2 and b["ts"] <= time.time_ns() for b in bodies)
        # A client that connects later finds the retained status.
        late = subscriber_factory(mosquitto.port, f"devices/{device}/status")
        await until(lambda: late.on(f"devices/{device}/status"), what="retained status")
        (status,) = late.on(f"devices/{device}/status")
        assert (status.payload, status.retain) == (b"online", True)
        assert bridge.counters["frames_published"] == 3
    # Stopping the runtime stops the bridge, which says so before it goes.
    await until(lambda: len(late.on(f"devices/{device}/status")) == 2, what="offline")
    assert late.on(f"devices/{device}/status")[-1].payload == b"offline"
    assert not bridge.port_open.is_set()


async def test_availability_reaches_the_registry_through_the_ingest_client(
    tmp_path: Path, mosquitto, subscriber_factory
):
    # The wiring the gateway does: extra subscriptions, and intercept() around on_message.
    text = config_text(mosquitto.port, (
        "inputs:\n"
        "  - {topic: 'zigbee2mqtt/{device}', format: zigbee2mqtt}\n"
        "  - {topic: 'tele/{device}/SENSOR', format: tasmota}\n"
        "devices:\n  plug: {convention: tasmota}\n"
    ))  # fmt: skip
    loaded = parse_config(text, str(tmp_path / "outpost.yaml"), tmp_path, {})
    metrics = Metrics()
    rt = DevicesRuntime(loaded, metrics)
    publisher = subscriber_factory(mosquitto.port, "unused/x")
    # Retained before the gateway connects: it must learn them at subscribe time.
    publisher.client.publish("zigbee2mqtt/lamp/availability", '{"state":"offline"}', 1,
                             retain=True).wait_for_publish(5)  # fmt: skip
    passed: list[tuple[str, Any]] = []
    ingest = MqttSource(
        loaded.config.mqtt,
        [("zigbee2mqtt/+", 1), ("tele/+/SENSOR", 1), *rt.subscriptions()],
        metrics,
    )
    ingest.start(rt.intercept(lambda topic, payload, token: passed.append((topic, token))))
    try:
        assert await asyncio.to_thread(ingest.wait_connected, 10)
        await until(lambda: rt.registry.devices.get("lamp"), what="retained availability")
        # Retained (as Tasmota sends its LWT): no race with the SUBACK.
        publisher.client.publish("tele/plug/LWT", "Online", 1, retain=True).wait_for_publish(5)
        await until(lambda: rt.registry.devices.get("plug"), what="the LWT")
        publisher.publish("zigbee2mqtt/lamp", '{"brightness": 10}')
        await until(lambda: passed, what="the state message")
        ingest.ack(token for _, token in passed if token is not None)
    finally:
        await asyncio.to_thread(ingest.stop)
    entries = {e["device"]: e for e in rt.snapshot()}
    assert (entries["lamp"]["online"], entries["lamp"]["online_reason"]) == (False, "availability")
    assert (entries["plug"]["online"], entries["plug"]["convention"]) == (True, "tasmota")
    assert [topic for topic, _ in passed] == ["zigbee2mqtt/lamp"]  # availability stayed with us


async def test_availability_reaches_the_registry_through_the_gateways_mqtt_link(
    tmp_path: Path, mosquitto, subscriber_factory
):
    from gateway.mqtt.link import MqttLink

    text = config_text(mosquitto.port, (
        "inputs:\n  - {topic: 'tele/{device}/SENSOR', format: tasmota}\n"
        "serial: []\ndevices:\n  fan-1: {convention: outpost}\n"
    ))  # fmt: skip
    loaded = parse_config(text, str(tmp_path / "outpost.yaml"), tmp_path, {})
    rt = DevicesRuntime(loaded, Metrics())
    link = MqttLink(loaded.config.mqtt, asyncio.get_running_loop())
    link.subscribe(rt.availability_filters(), rt.on_message)
    link.start()
    publisher = subscriber_factory(mosquitto.port, "unused/x")
    try:
        assert await asyncio.to_thread(link.connected.wait, 10)
        for topic, payload in (("tele/plug/LWT", "Offline"), ("devices/fan-1/status", "online")):
            publisher.client.publish(topic, payload, 1, retain=True).wait_for_publish(5)
        await until(lambda: {"plug", "fan-1"} <= set(rt.registry.devices), what="both")
    finally:
        link.stop()
    entries = {e["device"]: e for e in rt.snapshot()}
    assert (entries["plug"]["online"], entries["plug"]["convention"]) == (False, "tasmota")
    assert (entries["fan-1"]["online"], entries["fan-1"]["convention"]) == (True, "outpost")
