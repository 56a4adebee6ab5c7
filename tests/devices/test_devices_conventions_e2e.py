"""Each convention end to end through a real Mosquitto: a fake device built from the
documented topics publishes availability and state and answers commands the way the real
one does; the gateway side uses only the Convention interface (subscribe, decode,
availability, encode_command, AckTracker)."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Callable

import aiomqtt
import paho.mqtt.client as paho
import pytest

import devices.conventions as conventions
from devices.conventions import AckOutcome, AckTracker, PendingCommand
from devices.decoding import Message

Out = list[tuple[str, bytes | str, bool]]  # (topic, payload, retain)


class FakeDevice:
    """A paho client that plays one device: startup messages, then command → answers."""

    def __init__(self, port: int, commands: str, answer: Callable[[str, bytes], Out]) -> None:
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2,
                                  client_id=f"fake-{uuid.uuid4().hex[:8]}")  # fmt: skip
        self.answer = answer
        self.client.on_message = self._on_message
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *args: subscribed.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.client.subscribe(commands, 1)
        assert subscribed.wait(10), "no SUBACK"  # else a command could pass unheard

    def _on_message(self, client, userdata, message) -> None:
        for topic, payload, retain in self.answer(message.topic, message.payload):
            client.publish(topic, payload, qos=1, retain=retain)

    def publish(self, out: Out) -> None:
        for topic, payload, retain in out:
            self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def outpost_device(d: str):
    startup = [(f"devices/{d}/status", "online", True),
               (f"sensors/{d}", '{"temperature": 21.5}', False)]  # fmt: skip

    def answer(topic, payload):
        command = json.loads(payload)
        return [(f"devices/{d}/ack", json.dumps({"id": command["id"], "ok": True}), False)]

    return f"devices/{d}/set", startup, answer


def zigbee2mqtt_device(d: str):
    state = {"state": "OFF", "brightness": 100, "temperature": 21.5, "linkquality": 80}
    startup = [(f"zigbee2mqtt/{d}/availability", '{"state":"online"}', True),
               (f"zigbee2mqtt/{d}", json.dumps(state), False)]  # fmt: skip

    def answer(topic, payload):  # Zigbee2MQTT publishes the whole new state after a /set
        state.update(json.loads(payload))
        return [(f"zigbee2mqtt/{d}", json.dumps(state), False)]

    return f"zigbee2mqtt/{d}/set", startup, answer


def tasmota_device(d: str):
    startup = [(f"tele/{d}/LWT", "Online", True),
               (f"tele/{d}/SENSOR", '{"Time":"2026-11-27T10:00:00","DS18B20":'
                                    '{"Temperature":21.5},"TempUnit":"C"}', False)]  # fmt: skip

    def answer(topic, payload):
        command = topic.rsplit("/", 1)[1]
        if command.upper().startswith("POWER"):
            value = payload.decode().upper()
            return [(f"stat/{d}/RESULT", json.dumps({command.upper(): value}), False),
                    (f"stat/{d}/{command.upper()}", value, False)]  # fmt: skip
        return [(f"stat/{d}/RESULT", '{"Command":"Unknown"}', False)]

    return f"cmnd/{d}/+", startup, answer


def esphome_device(d: str):
    startup = [(f"{d}/status", "online", True),
               (f"{d}/sensor/temperature/state", "21.5", False)]  # fmt: skip

    def answer(topic, payload):  # the entity publishes its new state
        return [(topic.removesuffix("/command") + "/state", payload, False)]

    return f"{d}/+/+/command", startup, answer


def shelly_device(d: str):
    startup = [(f"{d}/online", "true", True),
               (f"{d}/status/temperature:0", '{"id":0,"tC":21.5,"tF":70.7}', False)]  # fmt: skip

    def answer(topic, payload):
        request = json.loads(payload)
        reply = {"id": request["id"], "src": d, "dst": request["src"],
                 "result": {"was_on": False}}  # fmt: skip
        status = {"id": 0, "output": request["params"]["on"]}
        return [(f"{request['src']}/rpc", json.dumps(reply), False),
                (f"{d}/status/switch:0", json.dumps(status), False)]  # fmt: skip

    return f"{d}/rpc", startup, answer


def homie_device(d: str):
    startup = [(f"homie/{d}/$state", "ready", True),
               (f"homie/{d}/sensor/temperature/$datatype", "float", True),
               (f"homie/{d}/relay/on/$datatype", "boolean", True),
               (f"homie/{d}/sensor/temperature", "21.5", True)]  # fmt: skip

    def answer(topic, payload):  # a settable retained property echoes its new value
        return [(topic.removesuffix("/set"), payload, True)]

    return f"homie/{d}/+/+/set", startup, answer


CASES = {
    "outpost": (outpost_device, {"speed": 100}),
    "zigbee2mqtt": (zigbee2mqtt_device, {"state": True, "brightness": 128}),
    "tasmota": (tasmota_device, {"Power1": True}),
    "esphome": (esphome_device, {"relay": True}),
    "shelly_gen2": (shelly_device, {"on": True}),
    "homie": (homie_device, {"relay/on": True}),
}


@pytest.mark.parametrize("name", sorted(CASES))
async def test_convention_reads_state_and_availability_and_gets_its_command_acked(
    name, shared_mosquitto
):
    device = f"dev{uuid.uuid4().hex[:8]}"
    make, settings = CASES[name]
    commands, startup, answer = make(device)
    src = f"outpost-{uuid.uuid4().hex[:6]}"  # per-test reply topic for Shelly
    convention = conventions.create(name, {"src": src})
    fake = FakeDevice(shared_mosquitto.port, commands, answer)
    try:
        async with aiomqtt.Client("127.0.0.1", shared_mosquitto.port,
                                  identifier=f"gw-{uuid.uuid4().hex[:8]}") as gateway:  # fmt: skip
            for topic in [*convention.subscriptions(), *convention.ack_subscriptions(device)]:
                await gateway.subscribe(topic, qos=1)
            fake.publish(startup)

            readings, online = [], None
            async with asyncio.timeout(10):
                async for received in gateway.messages:
                    message = Message(str(received.topic), received.payload, {}, 1)
                    if str(received.topic).split("/")[:2] != [src, "rpc"]:
                        readings += [r for r in convention.decode(message) if r.device == device]
                    status = convention.availability(message)
                    if status is not None and status.device == device:
                        online = status.online
                    if online and any(r.value == 21.5 for r in readings):
                        break
            assert online is True
            assert any(r.metric == "temperature" and r.value == 21.5 for r in readings)

            pending = PendingCommand(device, f"c-{uuid.uuid4().hex[:6]}", settings)
            tracker = AckTracker(convention, pending)
            for publish in convention.encode_command(device, pending.command_id, settings):
                await gateway.publish(publish.topic, publish.payload, qos=publish.qos,
                                      retain=publish.retain)  # fmt: skip
            async with asyncio.timeout(10):
                async for received in gateway.messages:
                    message = Message(str(received.topic), received.payload, {}, 2)
                    if tracker.feed(message) is not None:
                        break
            assert tracker.outcome is AckOutcome.ACKED, tracker.remaining
    finally:
        fake.close()


async def test_tasmota_unknown_command_is_rejected_end_to_end(shared_mosquitto):
    device = f"dev{uuid.uuid4().hex[:8]}"
    commands, _, answer = tasmota_device(device)
    tasmota = conventions.create("tasmota")
    fake = FakeDevice(shared_mosquitto.port, commands, answer)
    try:
        async with aiomqtt.Client("127.0.0.1", shared_mosquitto.port) as gateway:
            await gateway.subscribe(tasmota.ack_subscriptions(device)[0], qos=1)
            pending = PendingCommand(device, "c-1", {"Frobnicate": 1})
            tracker = AckTracker(tasmota, pending)
            for publish in tasmota.encode_command(device, "c-1", pending.settings):
                await gateway.publish(publish.topic, publish.payload, qos=1)
            async with asyncio.timeout(10):
                async for received in gateway.messages:
                    if tracker.feed(Message(str(received.topic), received.payload, {}, 1)):
                        break
            assert tracker.outcome is AckOutcome.REJECTED
            assert "Unknown" in tracker.reason
    finally:
        fake.close()
