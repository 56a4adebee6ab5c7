"""Every payload decoder, fed arbitrary bytes, text and JSON, keeps the decoding contract.

The contract (``devices/decoding.py``): a decoder either returns readings the rest of
the gateway can carry, or raises :class:`devices.decoding.DecodeError` with a reason.
Any other exception is a bug: the pipeline would dead-letter the message as
``internal_error``. "Can carry" is checked here the way the gateway uses a reading: the
device id, metric, tags and value pass the checks of ``devices/model.py`` (so they are
text UTF-8 can encode, with no control characters in names), the time is a
nanosecond count InfluxDB can store, and the line encoder writes it or refuses it as
``Unwritable`` — never anything else.

The formats (``value``, ``json``, ``influx``) and every device convention are fuzzed,
conventions on topics built from their own subscriptions and with several messages
into one instance (Homie remembers a property's datatype and unit between messages).
A convention's ``availability`` reader is held to the same contract.

By default each test runs a few dozen examples; ``OUTPOST_FUZZ_EXAMPLES=100000`` runs
as many as you like.
"""

from __future__ import annotations

import json
import math
import os
import string
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devices import catalog, conventions
from devices.decoding import DecodeError, Message
from devices.model import (
    MAX_DEVICE_ID,
    InvalidReading,
    Reading,
    check_device_id,
    check_identifier,
    check_text,
    check_value,
)
from gateway.influx.lineproto import LineEncoder, Unwritable

EXAMPLES = int(os.environ.get("OUTPOST_FUZZ_EXAMPLES", "60"))
# A long run must not be cut by the suite's per-test timeout: allow 0.1 s an example.
pytestmark = pytest.mark.timeout(max(120, EXAMPLES // 10))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
NOW = 1_795_755_841_000_000_000
INT64 = 2**63

# --- what a decoder may be given ----------------------------------------------------------

# Keys that mean something to some decoder, so the fuzzer reaches past "unknown field".
KNOWN_KEYS = [
    "ts", "time", "Time", "id", "device", "temperature", "humidity", "state", "value",
    "ENERGY", "Power", "POWER", "TempUnit", "PressureUnit", "DS18B20", "Switch1", "StatusSNS",
    "method", "params", "src", "switch:0", "temperature:0", "tC", "apower", "aenergy", "total",
    "$datatype", "$unit", "$state", "ok", "error", "color", "brightness", "linkquality",
    "Wifi", "RSSI", "Uptime", "UptimeSec", "battery", "action", "occupancy", "contact",
]  # fmt: skip
keys = st.one_of(st.sampled_from(KNOWN_KEYS), st.sampled_from(KNOWN_KEYS), st.text(max_size=12))
# Numbers at the edges decoders care about: epoch magnitudes (s, ms, µs, ns), int64, floats
# too large for an int, negative times.
EDGE_NUMBERS = [0, -1, -5, 1e10, 1e11, 1e14, 1e17, 2**63 - 1, 2**63, 2**64, -(2**63), 1e300,
                -1e300, 1e-300, 1.5, 4300 * 10**10, 10**400]  # fmt: skip
EDGE_TEXT = ["ON", "OFF", "online", "offline", "true", "false", "Online", "1.5", "TOGGLE",
             "2026-11-27T05:04:01Z", "2026-11-27T05:04:01", "0001-01-01T00:00:00+14:00",
             "9999-12-31T23:59:59-14:00", "\ud800", "a\nb", "\x1b[2J", "\u2028", "9" * 30,
             "1e999", "-0", "nan", "inf", "", " ", "#x", "x\\", "float", "integer",
             "boolean", "enum", "color"]  # fmt: skip
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),  # NaN and ±Infinity too: json.dumps writes them as NaN/Infinity
    st.text(max_size=20),
    st.sampled_from(EDGE_NUMBERS),
    st.sampled_from(EDGE_TEXT),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=6), st.dictionaries(keys, inner, max_size=6)
    ),
    max_leaves=25,
)
# Objects that often hold the fields decoders read (a time, an id, a reading) next to others.
json_objects = st.builds(
    lambda known, other: {**other, **known},
    st.fixed_dictionaries(
        {}, optional={k: scalars for k in ("ts", "time", "Time", "id", "temperature", "state")}
    ),
    st.dictionaries(keys, json_values, max_size=6),
)


def _dumps(value: Any, ascii_only: bool) -> bytes:
    # ensure_ascii writes a lone surrogate as "\ud800"; otherwise it is encoded raw
    # (surrogatepass), which is not UTF-8 at all.
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


# A Shelly notification frame: readings sit two levels down, behind a method name.
rpc_frames = st.fixed_dictionaries(
    {
        "method": st.sampled_from(["NotifyStatus", "NotifyFullStatus", "NotifyEvent"]),
        "params": json_objects,
    }
)
json_payloads = st.builds(
    _dumps, st.one_of(json_objects, rpc_frames, json_values), st.booleans()
)
text_payloads = st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass"))
# Line protocol: shaped lines (measurement, tags, fields, time) with odd characters in
# every part, and free text over its special characters.
lp_name = st.one_of(
    st.sampled_from(["m", "climate", "temperature", "gh-1", "value", "state"]),
    st.text(alphabet="abc_-", min_size=1, max_size=6),
    st.text(alphabet="ab\t\x1b\x7f\x9b\u202e\u2066\u00e9#\\", min_size=1, max_size=6),
    st.text(alphabet="ab \\,=#\x85\u2028", min_size=1, max_size=6),  # separators too
)
lp_value = st.one_of(
    st.sampled_from(["1", "-2.5", "40i", "7u", "t", "FALSE", '"x y"', '"a\\"b"', "nan", "1e999",
                     "9" * 30 + "i", '"', ""]),
    lp_name,
)  # fmt: skip
lp_time = st.one_of(
    st.just(""), st.sampled_from(["1795755841000000000", "-1", "9" * 25, "x"]).map(" ".__add__)
)
lp_lines = st.builds(
    lambda m, tags, fields, ts: m
    + "".join(f",{k}={v}" for k, v in tags)
    + " "
    + ",".join(f"{k}={v}" for k, v in fields)
    + ts,
    lp_name,
    st.lists(st.tuples(st.one_of(st.just("device"), lp_name), lp_name), max_size=3),
    st.lists(st.tuples(lp_name, lp_value), min_size=1, max_size=3),
    lp_time,
)
line_protocol = st.one_of(
    st.lists(lp_lines, min_size=1, max_size=4).map("\n".join),
    st.text(alphabet=string.ascii_letters[:8] + string.digits + ',= "\\#\n.-+iutfTF_\t\u00e9\ud800',
            max_size=120),
).map(lambda t: t.encode("utf-8", "surrogatepass"))
# JSON first: Hypothesis leans towards the first choices, and most decoders read JSON.
payloads = st.one_of(
    json_payloads,
    st.sampled_from(EDGE_TEXT).map(lambda t: t.encode("utf-8", "surrogatepass")),
    text_payloads,
    line_protocol,
    st.binary(max_size=300),
)

# A topic level as the router hands it over: never empty, never holding "/". A broker
# that does not check UTF-8 can make it hold surrogates (gateway.mqtt.subscriber).
LEVELS = ["gh-1", "fan-1", "bridge", "status", "SENSOR", "temperature", "x" * (MAX_DEVICE_ID + 1)]
levels = st.one_of(
    st.sampled_from(LEVELS), st.sampled_from(LEVELS), st.text(min_size=1, max_size=20)
).filter(lambda level: "/" not in level)

# --- what a decoder may return --------------------------------------------------------------


def assert_carried(reading: Reading, topic: str) -> None:
    """The reading is one the pipeline, InfluxDB, MQTT and the log can all carry."""
    assert isinstance(reading, Reading)
    assert check_device_id(reading.device) == reading.device
    check_identifier("metric", reading.metric)
    assert type(check_value(reading.value)) is type(reading.value)
    if isinstance(reading.value, float):
        assert math.isfinite(reading.value)
    assert isinstance(reading.ts, int) and not isinstance(reading.ts, bool)
    assert 0 <= reading.ts < INT64, reading.ts
    assert isinstance(reading.unit, str)
    check_text("unit", reading.unit)
    for key, value in reading.tags.items():
        assert isinstance(key, str) and isinstance(value, str)
        check_text("tag", key)
        check_text("tag", value)
    assert reading.topic == topic
    try:
        line = LineEncoder().encode(reading)
    except Unwritable:
        return
    line.encode("utf-8")
    assert "\n" not in line


def decoded(decoder: Any, message: Message) -> list[Reading]:
    """The readings, or [] for a refusal the contract allows; anything else fails."""
    try:
        readings = decoder.decode(message)
    except DecodeError as exc:
        assert isinstance(exc.reason, str) and exc.reason
        return []
    assert isinstance(readings, list)
    for reading in readings:
        assert_carried(reading, message.topic)
    return readings


# --- the formats ------------------------------------------------------------------------

@FUZZ
@given(payload=line_protocol, device=levels)
def test_the_influx_format_on_any_line_protocol(payload, device):
    for options in ({}, {"device_from_payload": True}):
        decoder = catalog.get("influx")(options)
        decoded(decoder, Message(f"t/{device}", payload, {"device": device}, NOW))


FORMAT_OPTIONS = {
    "value": [{}, {"metric": "m", "device": "d"}],
    "json": [{}, {"time_field": "ts", "device_field": "id"}, {"device_field": "id",
             "device_from_payload": True, "max_readings_per_message": 4}],
    "influx": [{}, {"device_from_payload": True}, {"max_readings_per_message": 2}],
}  # fmt: skip


@pytest.mark.parametrize("fmt", sorted(FORMAT_OPTIONS))
@FUZZ
@given(data=st.data(), payload=payloads, device=levels, metric=levels)
def test_a_format_decodes_or_refuses_any_payload(fmt, data, payload, device, metric):
    options = data.draw(st.sampled_from(FORMAT_OPTIONS[fmt]))
    fields = data.draw(
        st.sampled_from([{"device": device, "metric": metric}, {"device": device}, {}])
    )
    decoder = catalog.get(fmt)(options)
    decoded(decoder, Message(f"t/{device}/{metric}", payload, fields, NOW, trace_id="f1"))


@FUZZ
@given(value=json_values, ascii_only=st.booleans())
def test_the_json_format_on_any_json_object(value, ascii_only):
    decoder = catalog.get("json")({"time_field": "ts", "device_field": "id"})
    body = value if isinstance(value, dict) else {"v": value}
    decoded(decoder, Message("sensors/gh-1", _dumps(body, ascii_only), {"device": "gh-1"}, NOW))


# --- the device conventions -------------------------------------------------------------


def _topic(data: st.DataObject, topic_filter: str) -> str:
    out = []
    for level in topic_filter.split("/"):
        if level == "+":
            out.append(data.draw(levels))
        elif level == "#":
            out.extend(data.draw(st.lists(levels, min_size=1, max_size=3)))
        else:
            out.append(level)
    return "/".join(out)


CONVENTION_OPTIONS = {"tasmota": [{}, {"time": "local"}], "outpost": [{}, {"time_field": "t"}]}


@pytest.mark.parametrize("name", conventions.names())
@FUZZ
@given(data=st.data())
def test_a_convention_decodes_or_refuses_any_message(name, data):
    options = data.draw(st.sampled_from(CONVENTION_OPTIONS.get(name, [{}])))
    convention = conventions.create(name, options)
    filters = convention.subscriptions()
    for _ in range(data.draw(st.integers(1, 4))):
        if data.draw(st.integers(0, 3)):  # mostly the convention's own topics
            topic = _topic(data, data.draw(st.sampled_from(filters)))
        else:
            topic = "/".join(data.draw(st.lists(levels, min_size=1, max_size=5)))
        message = Message(topic, data.draw(payloads), {}, NOW, trace_id="f1")
        decoded(convention, message)
        try:
            status = convention.availability(message)
        except InvalidReading:
            continue
        if status is not None:
            assert check_device_id(status.device) == status.device
            assert isinstance(status.online, bool)
