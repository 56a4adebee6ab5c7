"""Zigbee2MQTT convention, payloads from https://www.zigbee2mqtt.io/guide/usage/mqtt_topics_and_messages.html
and https://www.zigbee2mqtt.io/guide/configuration/device-availability.html."""

from __future__ import annotations

import json

import pytest

import devices.conventions as conventions
from devices.conventions import Availability, PendingCommand
from devices.decoding import Message
from devices.model import InvalidReading

Z2M = conventions.create("zigbee2mqtt", {"topic": "zigbee2mqtt/{device}", "format": "zigbee2mqtt"})
NOW = 1_795_755_841_000_000_000


def msg(topic, payload, tags=None):
    return Message(topic, payload if isinstance(payload, bytes) else payload.encode(), {}, NOW,
                   tags or {})  # fmt: skip


def values(readings):
    return {r.metric: (r.value, r.unit) for r in readings}


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        # Xiaomi MiJia temperature & humidity sensor (WSDCGQ01LM), from the topics page
        ('{"temperature": 27.34, "humidity": 44.72}',
         {"temperature": (27.34, "°C"), "humidity": (44.72, "%")}),
        # Xiaomi MiJia wireless switch (WXKG01LM): an action stays a string
        ('{"action": "single"}', {"action": ("single", "")}),
        # Xiaomi human body movement sensor (RTCGQ01LM): bools stay bools
        ('{"occupancy": true}', {"occupancy": (True, "")}),
        # IKEA TRADFRI LED1545G12: state ON becomes a bool, integers become floats
        ('{"state": "ON", "brightness": 215, "color_temp": 325}',
         {"state": (True, ""), "brightness": (215.0, ""), "color_temp": (325.0, "")}),
        # A colour light reports its colour as an object: flattened with "_"
        ('{"state": "OFF", "color": {"x": 0.701, "y": 0.299}, "color_mode": "xy", '
         '"linkquality": 87}',
         {"state": (False, ""), "color_x": (0.701, ""), "color_y": (0.299, ""),
          "color_mode": ("xy", ""), "linkquality": (87.0, "lqi")}),
        # last_seen and the OTA "update" object are not readings; null means unknown
        ('{"temperature": 21.5, "last_seen": "2026-11-27T10:00:00.000Z", '
         '"update": {"state": "idle", "installed_version": 1}, "update_available": false, '
         '"battery": null}',
         {"temperature": (21.5, "°C")}),
        # Multi-endpoint switches report state_l1, state_l2
        ('{"state_l1": "ON", "state_l2": "OFF"}',
         {"state_l1": (True, ""), "state_l2": (False, "")}),
    ],
)  # fmt: skip
def test_state_payloads_decode_to_typed_readings(payload, expected):
    readings = Z2M.decode(msg("zigbee2mqtt/living_room", payload, {"zone": "home"}))
    assert values(readings) == expected
    for r in readings:
        assert (r.device, r.ts, r.topic) == ("living_room", NOW, "zigbee2mqtt/living_room")
        assert r.tags == {"zone": "home"}


def test_numbers_are_always_floats():
    (reading,) = Z2M.decode(msg("zigbee2mqtt/s", '{"humidity": 40}'))
    assert type(reading.value) is float


@pytest.mark.parametrize(
    "topic", ["zigbee2mqtt/bridge/state", "zigbee2mqtt/bridge/devices", "zigbee2mqtt/lamp/set",
              "zigbee2mqtt/lamp/availability", "zigbee2mqtt/lamp/get"]
)  # fmt: skip
def test_bridge_command_and_availability_topics_carry_no_readings(topic):
    assert Z2M.decode(msg(topic, '{"state": "online"}')) == []


def test_a_friendly_name_with_a_slash_is_refused_not_guessed():
    with pytest.raises(InvalidReading) as caught:
        Z2M.decode(msg("zigbee2mqtt/kitchen/floor_light", '{"state": "ON"}'))
    assert caught.value.reason == "unsupported_topic"


def test_a_json_array_is_not_a_state():
    with pytest.raises(InvalidReading) as caught:
        Z2M.decode(msg("zigbee2mqtt/lamp", "[1, 2]"))
    assert caught.value.reason == "not_object"


@pytest.mark.parametrize(
    ("payload", "online"),
    [('{"state":"online"}', True), ('{"state":"offline"}', False), ("online", True),
     ("offline", False)],
)  # fmt: skip
def test_availability_reads_the_json_and_the_legacy_payload(payload, online):
    assert Z2M.availability(msg("zigbee2mqtt/lamp/availability", payload)) == Availability(
        "lamp", online
    )


def test_state_topics_are_not_availability():
    assert Z2M.availability(msg("zigbee2mqtt/lamp", '{"state":"ON"}')) is None


def test_a_custom_base_topic():
    z2m = conventions.create("zigbee2mqtt", {"base": "zb/"})
    assert z2m.subscriptions() == ["zb/+", "zb/+/availability"]
    assert values(z2m.decode(msg("zb/t1", '{"pressure": 1013.2}'))) == {"pressure": (1013.2, "hPa")}


def test_commands_go_to_set_with_on_off_for_state():
    (publish,) = Z2M.encode_command("lamp", "c-1", {"state": True, "brightness": 128})
    assert publish.topic == "zigbee2mqtt/lamp/set"
    assert json.loads(publish.payload) == {"state": "ON", "brightness": 128}
    assert Z2M.ack_subscriptions("lamp") == ["zigbee2mqtt/lamp"]


@pytest.mark.parametrize(
    ("settings", "echo", "confirmed"),
    [
        ({"state": True}, '{"state": "ON", "brightness": 12}', {"state"}),
        ({"state": True}, '{"state": "OFF"}', None),
        ({"state": True, "brightness": 128}, '{"state": "ON", "brightness": 128}',
         {"state", "brightness"}),
        ({"brightness": 128}, '{"brightness": 127}', None),
        ({"color": {"hex": "#FF0000"}}, '{"color": {"x": 0.7, "y": 0.3}}', {"color"}),
        ({"state": "TOGGLE"}, '{"state": "OFF"}', {"state"}),
    ],
)  # fmt: skip
def test_the_state_echo_confirms_the_requested_values(settings, echo, confirmed):
    pending = PendingCommand("lamp", "c-1", settings)
    confirmation = Z2M.confirm(msg("zigbee2mqtt/lamp", echo), pending)
    if confirmed is None:
        assert confirmation is None
    else:
        assert confirmation.keys == confirmed and not confirmation.rejected


def test_another_devices_echo_confirms_nothing():
    pending = PendingCommand("lamp", "c-1", {"state": True})
    assert Z2M.confirm(msg("zigbee2mqtt/lamp2", '{"state": "ON"}'), pending) is None
