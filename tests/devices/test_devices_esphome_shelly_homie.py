"""ESPHome (https://esphome.io/components/mqtt.html), Shelly Gen2
(https://shelly-api-docs.shelly.cloud/gen2/ComponentsAndServices/Switch,
.../gen2/General/RPCProtocol, .../gen2/General/Notifications) and Homie 4
(https://homieiot.github.io/specification/spec-core-v4_0_0/) conventions."""

from __future__ import annotations

import json

import pytest

import devices.conventions as conventions
from devices.conventions import Availability, PendingCommand
from devices.decoding import Message
from devices.model import InvalidReading

NOW = 1_795_755_841_000_000_000


def msg(topic, payload):
    return Message(topic, payload if isinstance(payload, bytes) else payload.encode(), {}, NOW)


# --- ESPHome ------------------------------------------------------------------------------

ESPHOME = conventions.create("esphome")


@pytest.mark.parametrize(
    ("topic", "payload", "expected"),
    [
        ("livingroom/sensor/temperature/state", "21.5", {"temperature": 21.5}),
        ("livingroom/binary_sensor/motion/state", "ON", {"motion": True}),
        ("livingroom/switch/relay/state", "OFF", {"relay": False}),
        ("livingroom/text_sensor/version/state", "2024.6.1", {"version": "2024.6.1"}),
        ("livingroom/sensor/temperature/state", "nan", {}),
        ("livingroom/light/desk/state", '{"state":"ON","brightness":255,"color_mode":"rgb",'
         '"color":{"r":255,"g":0,"b":0}}',
         {"desk_state": True, "desk_brightness": 255.0, "desk_color_mode": "rgb",
          "desk_color_r": 255.0, "desk_color_g": 0.0, "desk_color_b": 0.0}),
        ("livingroom/climate/hvac/current_temperature/state", "20.4",
         {"hvac_current_temperature": 20.4}),
        ("livingroom/status", "online", {}),
        ("livingroom/switch/relay/command", "ON", {}),
    ],
)  # fmt: skip
def test_esphome_state_topics_decode(topic, payload, expected):
    readings = ESPHOME.decode(msg(topic, payload))
    assert {r.metric: r.value for r in readings} == expected
    assert {r.device for r in readings} <= {"livingroom"}


def test_esphome_status_is_the_availability():
    assert ESPHOME.availability(msg("node1/status", "offline")) == Availability("node1", False)
    assert ESPHOME.availability(msg("node1/sensor/t/state", "1")) is None


def test_esphome_multi_level_prefix_through_base():
    esphome = conventions.create("esphome", {"base": "home"})
    (reading,) = esphome.decode(msg("home/esp1/sensor/t/state", "3"))
    assert (reading.device, reading.metric) == ("esp1", "t")
    assert esphome.subscriptions()[-1] == "home/+/status"


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"relay": True}, [("node1/switch/relay/command", b"ON")]),
        ({"switch/relay": "TOGGLE"}, [("node1/switch/relay/command", b"TOGGLE")]),
        ({"target": 22.5}, [("node1/number/target/command", b"22.5")]),
        ({"mode": "eco"}, [("node1/select/mode/command", b"eco")]),
        ({"desk": {"state": "ON", "brightness": 100}},
         [("node1/light/desk/command", b'{"state":"ON","brightness":100}')]),
    ],
)  # fmt: skip
def test_esphome_commands(settings, expected):
    publishes = ESPHOME.encode_command("node1", "c-1", settings)
    assert [(p.topic, p.payload) for p in publishes] == expected


def test_esphome_state_echo_is_the_ack():
    pending = PendingCommand("node1", "c-1", {"relay": True, "target": 22.5})
    got = ESPHOME.confirm(msg("node1/switch/relay/state", "ON"), pending)
    assert got.keys == {"relay"}
    assert ESPHOME.confirm(msg("node1/switch/relay/state", "OFF"), pending) is None
    assert ESPHOME.confirm(msg("node1/number/target/state", "22.5"), pending).keys == {"target"}
    assert ESPHOME.confirm(msg("node2/switch/relay/state", "ON"), pending) is None


# --- Shelly Gen2 --------------------------------------------------------------------------

SHELLY = conventions.create("shelly_gen2")
DEV = "shellyplus1pm-a8032ab12345"

# The Switch.GetStatus example of the Switch component page (also what status/switch:0 carries)
SWITCH_STATUS = {
    "id": 0, "source": "timer", "output": False, "timer_started_at": 1626942399.36,
    "timer_duration": 60, "apower": 8.9, "voltage": 237.5, "current": 0.04, "pf": 0.85,
    "freq": 50.0, "aenergy": {"total": 14.093, "by_minute": [0, 0, 0], "minute_ts": 1626942420},
    "temperature": {"tC": 41.2, "tF": 106.2},
}  # fmt: skip


def test_shelly_switch_status_decodes_to_named_metrics_tagged_by_component():
    readings = SHELLY.decode(msg(f"{DEV}/status/switch:0", json.dumps(SWITCH_STATUS)))
    assert {r.metric: (r.value, r.unit) for r in readings} == {
        "output": (False, ""),
        "power": (8.9, "W"),
        "voltage": (237.5, "V"),
        "current": (0.04, "A"),
        "power_factor": (0.85, ""),
        "frequency": (50.0, "Hz"),
        "energy": (14.093, "Wh"),
        "temperature": (41.2, "°C"),
    }
    assert {r.tags["component"] for r in readings} == {"switch:0"}
    assert {r.device for r in readings} == {DEV}


def test_shelly_temperature_null_when_out_of_range_is_skipped():
    status = {"id": 0, "output": True, "temperature": {"tC": None, "tF": None}}
    readings = SHELLY.decode(msg(f"{DEV}/status/switch:0", json.dumps(status)))
    assert [r.metric for r in readings] == ["output"]


def test_shelly_system_components_keep_only_useful_figures():
    wifi = {"sta_ip": "192.168.1.5", "status": "got ip", "ssid": "home", "rssi": -58}
    (reading,) = SHELLY.decode(msg(f"{DEV}/status/wifi", json.dumps(wifi)))
    assert (reading.metric, reading.value, reading.unit) == ("rssi", -58.0, "dBm")


def test_shelly_notify_status_carries_its_own_time():
    # Notification frame as on the Notifications page, published on <id>/events/rpc
    frame = {"src": DEV, "dst": f"{DEV}/events", "method": "NotifyStatus",
             "params": {"ts": 1631266595.43, "switch:0": {"id": 0, "output": True}}}  # fmt: skip
    (reading,) = SHELLY.decode(msg(f"{DEV}/events/rpc", json.dumps(frame)))
    assert (reading.metric, reading.value) == ("output", True)
    assert abs(reading.ts - 1_631_266_595_430_000_000) < 1_000
    event = {"src": DEV, "method": "NotifyEvent", "params": {"ts": 1.0, "events": []}}
    assert SHELLY.decode(msg(f"{DEV}/events/rpc", json.dumps(event))) == []


@pytest.mark.parametrize(("payload", "online"), [("true", True), ("false", False)])
def test_shelly_online_topic(payload, online):
    assert SHELLY.availability(msg(f"{DEV}/online", payload)) == Availability(DEV, online)


def test_shelly_command_is_a_json_rpc_switch_set_and_the_reply_id_is_the_ack():
    (publish,) = SHELLY.encode_command(DEV, "c-7", {"on": True})
    assert publish.topic == f"{DEV}/rpc"
    request = json.loads(publish.payload)
    assert request == {"id": "c-7.on", "src": "outpost", "method": "Switch.Set",
                       "params": {"id": 0, "on": True}}  # fmt: skip
    assert SHELLY.ack_subscriptions(DEV) == ["outpost/rpc"]
    pending = PendingCommand(DEV, "c-7", {"on": True})
    reply = {"id": "c-7.on", "src": DEV, "dst": "outpost", "result": {"was_on": False}}
    assert SHELLY.confirm(msg("outpost/rpc", json.dumps(reply)), pending).keys == {"on"}
    other = {**reply, "id": "c-8.on"}
    assert SHELLY.confirm(msg("outpost/rpc", json.dumps(other)), pending) is None
    problem = {"code": -103, "message": "Invalid argument 'id': no such component"}
    error = {"id": "c-7.on", "src": DEV, "dst": "outpost", "error": problem}
    refusal = SHELLY.confirm(msg("outpost/rpc", json.dumps(error)), pending)
    assert refusal.rejected and "no such component" in refusal.reason


@pytest.mark.parametrize(
    ("settings", "method", "params"),
    [
        ({"switch:1": False}, "Switch.Set", {"id": 1, "on": False}),
        ({"cover:0": 50}, "Cover.GoToPosition", {"id": 0, "pos": 50}),
        ({"brightness": 30}, "Light.Set", {"id": 0, "brightness": 30}),
    ],
)
def test_shelly_other_settings_map_to_rpc_methods(settings, method, params):
    (publish,) = SHELLY.encode_command(DEV, "c", settings)
    request = json.loads(publish.payload)
    assert (request["method"], request["params"]) == (method, params)


def test_shelly_refuses_a_setting_it_has_no_method_for():
    with pytest.raises(InvalidReading, match="no Shelly RPC"):
        SHELLY.encode_command(DEV, "c", {"on": 5})


# --- Homie 4 ------------------------------------------------------------------------------


def test_homie_types_values_by_their_datatype_and_unit():
    homie = conventions.create("homie")
    # The spec's super-car example, with attributes as retained messages arriving first
    assert homie.decode(msg("homie/super-car/engine/temperature/$datatype", "float")) == []
    assert homie.decode(msg("homie/super-car/engine/temperature/$unit", "°C")) == []
    assert homie.decode(msg("homie/super-car/lights/power/$datatype", "boolean")) == []
    assert homie.decode(msg("homie/super-car/lights/color/$datatype", "color")) == []
    (t,) = homie.decode(msg("homie/super-car/engine/temperature", "21.5"))
    assert (t.device, t.metric, t.value, t.unit, t.tags) == (
        "super-car", "temperature", 21.5, "°C", {"node": "engine"})  # fmt: skip
    (p,) = homie.decode(msg("homie/super-car/lights/power", "true"))
    assert p.value is True
    (c,) = homie.decode(msg("homie/super-car/lights/color", "255,255,0"))
    assert c.value == "255,255,0"
    with pytest.raises(InvalidReading):
        homie.decode(msg("homie/super-car/lights/power", "yes"))


def test_homie_guesses_before_the_datatype_is_known_and_ignores_attributes():
    homie = conventions.create("homie")
    assert homie.decode(msg("homie/dev/$homie", "4.0.0")) == []
    assert homie.decode(msg("homie/dev/engine/$properties", "speed")) == []
    assert homie.decode(msg("homie/dev/engine/speed/set", "10")) == []
    (r,) = homie.decode(msg("homie/dev/engine/speed", "10"))
    assert r.value == 10.0


@pytest.mark.parametrize(
    ("state", "online"),
    [("ready", True), ("alert", True), ("lost", False), ("disconnected", False),
     ("sleeping", False), ("init", None)],
)  # fmt: skip
def test_homie_state_lifecycle_is_the_availability(state, online):
    got = conventions.create("homie").availability(msg("homie/dev/$state", state))
    assert got == (None if online is None else Availability("dev", online))


def test_homie_set_and_echo():
    homie = conventions.create("homie")
    publishes = homie.encode_command("dev", "c", {"lights/power": True, "engine/speed": 40.0})
    assert [(p.topic, p.payload, p.retain) for p in publishes] == [
        ("homie/dev/lights/power/set", b"true", False),
        ("homie/dev/engine/speed/set", b"40", False),
    ]
    pending = PendingCommand("dev", "c", {"lights/power": True})
    assert homie.confirm(msg("homie/dev/lights/power", "true"), pending).keys == {"lights/power"}
    assert homie.confirm(msg("homie/dev/lights/power", "false"), pending) is None
    with pytest.raises(InvalidReading, match="node/property"):
        homie.encode_command("dev", "c", {"power": True})


# --- Outpost (DESIGN §5) ------------------------------------------------------------------

OUTPOST = conventions.create("outpost")


@pytest.mark.parametrize(
    ("topic", "payload", "expected", "ts"),
    [
        ("sensors/gh-1", '{"temperature": 21.5, "humidity": 40, "ts": 1795755841}',
         {"temperature": 21.5, "humidity": 40.0}, 1_795_755_841_000_000_000),
        ("sensors/gh-1", '{"temperature": 21.5, "ts": 1795755841123}',
         {"temperature": 21.5}, 1_795_755_841_123_000_000),
        ("sensors/gh-1", '{"t": 1, "ts": "2026-11-27T10:00:00.123Z"}',
         {"t": 1.0}, 1_795_773_600_123_000_000),
        ("sensors/gh-1", '{"soil": {"moisture": 30}}', {"soil_moisture": 30.0}, NOW),
        ("sensors/gh-1/temperature", "21.5", {"temperature": 21.5}, NOW),
        ("sensors/gh-1/door", "true", {"door": True}, NOW),
        ("sensors/gh-1/mode", '"on"', {"mode": "on"}, NOW),
        ("sensors/gh-1/mode", "auto", {"mode": "auto"}, NOW),
    ],
)  # fmt: skip
def test_outpost_sensor_topics(topic, payload, expected, ts):
    readings = OUTPOST.decode(msg(topic, payload))
    assert {r.metric: r.value for r in readings} == expected
    assert {r.ts for r in readings} == {ts}


def test_outpost_command_ack_and_status():
    (publish,) = OUTPOST.encode_command("fan-1", "c-1", {"speed": 100})
    assert (publish.topic, json.loads(publish.payload)) == (
        "devices/fan-1/set", {"id": "c-1", "speed": 100})  # fmt: skip
    pending = PendingCommand("fan-1", "c-1", {"speed": 100})
    ok = OUTPOST.confirm(msg("devices/fan-1/ack", '{"id": "c-1", "ok": true}'), pending)
    assert ok.keys == {"speed"} and not ok.rejected
    assert OUTPOST.confirm(msg("devices/fan-1/ack", '{"id": "c-0", "ok": true}'), pending) is None
    status = OUTPOST.availability(msg("devices/fan-1/status", "online"))
    assert status == Availability("fan-1", True)
    with pytest.raises(InvalidReading):
        OUTPOST.encode_command("fan-1", "c-1", {"id": 3})


def test_esphome_text_sensors_keep_on_as_text():
    (reading,) = ESPHOME.decode(msg("node1/text_sensor/mode/state", "ON"))
    assert reading.value == "ON"
