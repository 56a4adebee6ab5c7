"""What every device convention promises: registry, refused device ids, decoder contract."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import devices.conventions as conventions
from devices import catalog as registry
from devices.conventions import AckOutcome, AckTracker, PendingCommand
from devices.decoding import Message
from devices.model import InvalidReading

NAMES = ["esphome", "homie", "outpost", "shelly_gen2", "sparkplug", "tasmota", "zigbee2mqtt"]

# One harmless setting each convention can encode.
SETTING = {
    "outpost": {"speed": 100},
    "zigbee2mqtt": {"state": True},
    "tasmota": {"POWER": True},
    "esphome": {"relay": True},
    "shelly_gen2": {"on": True},
    "homie": {"relay/on": True},
    "sparkplug": {"Outputs/Speed": 10},
}

BAD_IDS = ["a+b", "a#", "kitchen/fan", "nul\x00", "tab\tbed", "new\nline", "del\x7f", ""]


def test_every_convention_is_registered_by_name():
    assert conventions.names() == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_every_convention_is_usable_as_an_input_format(name):
    factory = registry.get(name)
    decoder = factory({"topic": "x/{device}", "format": name, "qos": 1})
    assert hasattr(decoder, "decode")


def test_public_names_exist():
    import devices.conventions.base as base

    for module in (conventions, base):
        for name in module.__all__:
            assert hasattr(module, name), name


def test_unknown_convention_names_the_known_ones():
    with pytest.raises(KeyError, match="zigbee2mqtt"):
        conventions.create("zwave")


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("device", BAD_IDS)
def test_a_device_id_with_topic_or_control_characters_never_produces_a_topic(name, device):
    convention = conventions.create(name)
    with pytest.raises(InvalidReading) as caught:
        convention.encode_command(device, "c-1", SETTING[name])
    assert caught.value.reason == "bad_device"
    with pytest.raises(InvalidReading):
        convention.ack_subscriptions(device)


@pytest.mark.parametrize(
    ("name", "topic", "payload"),
    [
        ("zigbee2mqtt", "zigbee2mqtt/lamp\x00x", b'{"temperature": 1}'),
        ("tasmota", "tele/bad\x01dev/SENSOR", b'{"DS18B20": {"Temperature": 1}}'),
        ("esphome", "node\x7f/sensor/t/state", b"1"),
        ("shelly_gen2", "shelly\tx/status/switch:0", b'{"output": true}'),
        ("homie", "homie/dev\x1b/n/p", b"1"),
        ("outpost", "sensors/gh\x001", b'{"t": 1}'),
        ("sparkplug", "spBv1.0/plant\x001/NBIRTH/node", b""),
    ],
)
def test_a_device_id_from_a_topic_with_control_characters_is_refused(name, topic, payload):
    with pytest.raises(InvalidReading) as caught:
        conventions.create(name).decode(Message(topic, payload, {}, 1))
    assert caught.value.reason == "bad_device"


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("payload", [b"", b"\xff\xfe", b"{", b"[1,2]", b"NaN", b'{"a": NaN}'])
def test_garbage_payloads_raise_only_decode_errors(name, payload):
    convention = conventions.create(name)
    for topic in _state_topics(name):
        try:
            readings = convention.decode(Message(topic, payload, {}, 1))
        except InvalidReading:
            continue
        for reading in readings:
            assert reading.value == reading.value  # never NaN


def _state_topics(name):
    return {
        "outpost": ["sensors/d", "sensors/d/m"],
        "zigbee2mqtt": ["zigbee2mqtt/d"],
        "tasmota": ["tele/d/SENSOR", "tele/d/STATE"],
        "esphome": ["d/sensor/t/state", "d/light/l/state"],
        "shelly_gen2": ["d/status/switch:0", "d/events/rpc"],
        "homie": ["homie/d/n/p"],
        "sparkplug": ["spBv1.0/g/NBIRTH/n", "spBv1.0/g/DDATA/n/d", "spBv1.0/g/NDEATH/n"],
    }[name]


def test_ack_tracker_waits_for_every_key_of_an_echo_convention():
    tasmota = conventions.create("tasmota")
    pending = PendingCommand("plug", "c-9", {"POWER": True, "Dimmer": 40})
    tracker = AckTracker(tasmota, pending)
    assert tracker.feed(Message("stat/plug/RESULT", b'{"POWER":"ON"}', {}, 1)) is None
    assert tracker.remaining == {"Dimmer"}
    assert tracker.feed(Message("stat/plug/RESULT", b'{"Dimmer":40}', {}, 2)) is AckOutcome.ACKED


def test_ack_tracker_stops_at_a_rejection():
    outpost = conventions.create("outpost")
    pending = PendingCommand("fan-1", "c-1", {"speed": 100})
    tracker = AckTracker(outpost, pending)
    message = Message("devices/fan-1/ack", b'{"id":"c-1","ok":false,"error":"jammed"}', {}, 1)
    assert tracker.feed(message) is AckOutcome.REJECTED
    assert tracker.reason == "jammed"


@pytest.mark.parametrize(
    ("name", "options", "base"),
    [
        ("zigbee2mqtt", {"topic": "zb/{device}", "format": "zigbee2mqtt"}, "zb"),
        ("zigbee2mqtt", {"topic": "zigbee2mqtt/#"}, "zigbee2mqtt"),
        ("zigbee2mqtt", {}, "zigbee2mqtt"),
        ("esphome", {"topic": "home/{device}/#"}, "home"),
        ("esphome", {"topic": "{device}/#"}, ""),
        ("homie", {"topic": "homie/+/+/+"}, "homie"),
        ("homie", {"base": "/devices/homie/", "topic": "x/#"}, "devices/homie"),
        ("shelly_gen2", {"topic": "{device}/status/+"}, ""),
    ],
)
def test_the_base_topic_comes_from_the_option_or_the_inputs_topic(name, options, base):
    assert conventions.create(name, options).base == base


@settings(max_examples=150, deadline=None)
@given(
    name=st.sampled_from(NAMES),
    levels=st.lists(st.sampled_from(["tele", "stat", "zigbee2mqtt", "homie", "sensors", "devices",
                                     "status", "SENSOR", "STATE", "RESULT", "LWT", "sensor",
                                     "switch", "state", "rpc", "online", "$state", "x", "a+b",
                                     "\x00", "", "switch:0", "events", "availability"]),
                    min_size=1, max_size=5),
    payload=st.one_of(st.binary(max_size=64),
                      st.recursive(st.none() | st.booleans() | st.floats() | st.text(max_size=8)
                                   | st.integers(),
                                   lambda inner: st.lists(inner, max_size=3)
                                   | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                                   max_leaves=8).map(lambda v: json.dumps(v).encode())),
)  # fmt: skip
def test_any_topic_and_payload_gives_readings_or_a_decode_error(name, levels, payload):
    convention = conventions.create(name)
    message = Message("/".join(levels), payload, {}, 1)
    try:
        readings = convention.decode(message)
    except InvalidReading as exc:
        assert exc.reason
        readings = []
    for reading in readings:
        assert isinstance(reading.value, (float, bool, str))
        assert not any(c in reading.device for c in "+#/\x00")
    try:
        convention.availability(message)
    except InvalidReading as exc:
        assert exc.reason == "bad_device"


# Sparkplug's online/offline follows from its sessions, read in order with the data.
STATELESS = [n for n in NAMES if n != "sparkplug"]


@pytest.mark.parametrize("name", STATELESS)
def test_availability_subscriptions_are_among_the_subscriptions(name):
    convention = conventions.create(name)
    assert convention.availability_subscriptions()
    assert set(convention.availability_subscriptions()) <= set(convention.subscriptions())
