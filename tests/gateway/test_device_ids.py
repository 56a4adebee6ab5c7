"""A device id is accepted or refused the same way by the command policy, every
payload format and every device convention (``devices.model.check_device_id``)."""

from __future__ import annotations

import json

import pytest

import devices.conventions as conventions
from devices import catalog
from devices.decoding import DecodeError, Message
from devices.model import MAX_DEVICE_ID
from gateway.actions.policy import CommandPolicy, Refused
from gateway.config.schema import CommandSpec, DeviceConfig

NOW = 1_795_755_841_000_000_000
LONG = "d" * 200
LONGEST = "d" * MAX_DEVICE_ID


def _policy(*devices: str) -> CommandPolicy:
    spec = DeviceConfig(commands={"speed": CommandSpec(type="int", min=0, max=3)})
    return CommandPolicy(dict.fromkeys(devices, spec))


def test_a_200_character_id_is_refused_by_the_command_policy_even_when_listed() -> None:
    with pytest.raises(Refused) as caught:
        _policy(LONG).check(LONG, {"speed": 1})
    assert caught.value.reason == "bad_device"


@pytest.mark.parametrize(
    ("fmt", "options", "topic", "fields", "payload"),
    [
        ("json", {"device_field": "id"}, "ingest/json", {}, b'{"id": "%s", "t": 1}'),
        ("value", {}, "sensors/%s/t", {"device": "%s", "metric": "t"}, b"1"),
        ("influx", {}, "ingest/influx", {}, b"t,device=%s value=1"),
    ],
)
def test_a_200_character_id_is_refused_at_decode(fmt, options, topic, fields, payload) -> None:
    decoder = catalog.get(fmt)(options)

    def message(device: str) -> Message:
        filled = {k: v.replace("%s", device) for k, v in fields.items()}
        return Message(
            topic.replace("%s", device), payload.replace(b"%s", device.encode()), filled, NOW
        )

    assert decoder.decode(message(LONGEST))[0].device == LONGEST
    with pytest.raises(DecodeError) as caught:
        decoder.decode(message(LONG))
    assert caught.value.reason == "bad_device"


def test_a_200_character_id_is_refused_by_a_convention() -> None:
    with pytest.raises(DecodeError) as caught:
        conventions.create("outpost").encode_command(LONG, "c-1", {"speed": 1})
    assert caught.value.reason == "bad_device"


def test_the_longest_accepted_id_can_be_commanded() -> None:
    command = _policy(LONGEST).check(LONGEST, {"speed": 2})
    assert command.topic == f"devices/{LONGEST}/set"


@pytest.mark.parametrize(
    "device",
    ["", "fan-1/set", "+", "a#", "tab\tbed", "del\x7f", "nel\x85", "line\u2028sep",
     "rtl\u202eoverride", "iso\u2066late"],
)  # fmt: skip
def test_the_policy_refuses_what_the_decoders_refuse(device: str) -> None:
    with pytest.raises(Refused) as caught:
        _policy(device).check(device, {"speed": 1})
    assert caught.value.reason == "bad_device"


@pytest.mark.parametrize(
    ("device", "reason"),
    [("gh\n1", "bad_device"), ("gh\x1b[2J", "bad_device"), ("gh\u2028", "bad_device"),
     ("gh\u202e1-hg", "bad_device"), ("gh-\udfff", "invalid_text")],
)  # fmt: skip
def test_an_id_from_a_payload_is_held_to_the_same_rule(device: str, reason: str) -> None:
    decoder = catalog.get("json")({"device_field": "id"})
    payload = json.dumps({"id": device, "t": 1}).encode()
    with pytest.raises(DecodeError) as caught:
        decoder.decode(Message("ingest/json", payload, {}, NOW))
    assert caught.value.reason == reason


@pytest.mark.parametrize("device", ["gh-1", "Gewächshaus 2", "温室", "a.b:c_d", "..", "🌡"])
def test_ids_people_use_are_accepted(device: str) -> None:
    decoder = catalog.get("json")({"device_field": "id"})
    payload = json.dumps({"id": device, "t": 1}).encode()
    assert decoder.decode(Message("ingest/json", payload, {}, NOW))[0].device == device
