"""Payload formats: value, json and influx line protocol (pure decoding, no broker)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices import catalog as registry
from devices.decoding import DecodeError, Message
from devices.formats.common import parse_time
from devices.formats.influx_lines import parse_line
from devices.model import Reading
from gateway.influx.lineproto import LineEncoder
from gateway.topics import TemplateError, TopicRouter, TopicTemplate

NOW = 1_795_755_841_000_000_000


def decode(fmt: str, payload: bytes, fields=None, **options):
    decoder = registry.get(fmt)(options)
    return decoder.decode(Message("t/x", payload, fields or {"device": "d1", "metric": "m"}, NOW))


@pytest.mark.parametrize(
    ("payload", "value"),
    [
        (b"21.5", 21.5),
        (b"40", 40.0),
        (b"-3e2", -300.0),
        (b"true", True),
        (b"FALSE", False),
        (b'"on"', "on"),
        (b"on", "on"),
        (b"  22 \n", 22.0),
        (b'"with \\"quotes\\""', 'with "quotes"'),
    ],
)
def test_value_payloads(payload, value):
    [reading] = decode("value", payload)
    assert reading.value == value and type(reading.value) is type(value)
    assert (reading.device, reading.metric, reading.ts) == ("d1", "m", NOW)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "empty_payload"),
        (b"nan", "non_finite"),
        (b"inf", "non_finite"),
        (b"-Infinity", "non_finite"),
        (b"1e999", "non_finite"),
        (b"\xff", "bad_utf8"),
        (b'"open', "bad_value"),
        (b"a\nb", "bad_value"),
    ],
)
def test_value_refusals(payload, reason):
    with pytest.raises(DecodeError) as info:
        decode("value", payload)
    assert info.value.reason == reason


def test_json_flattens_nested_objects_and_lists_and_reads_time():
    readings = decode(
        "json",
        b'{"t": 21, "env": {"co2": 415, "voc": {"idx": 3}}, '
        b'"cells": [3.3, 3.4], "ok": true, "mode": "eco", "gone": null, '
        b'"ts": "2026-11-27T05:04:01.250Z"}',
        time_field="ts",
    )
    assert {(r.metric, r.value) for r in readings} == {
        ("t", 21.0),
        ("env_co2", 415.0),
        ("env_voc_idx", 3.0),
        ("cells_0", 3.3),
        ("cells_1", 3.4),
        ("ok", True),
        ("mode", "eco"),
    }
    assert {r.ts for r in readings} == {1_795_755_841_250_000_000}


@pytest.mark.parametrize(
    ("raw", "ns"),
    [
        (1795755841, 1795755841 * 10**9),
        (1795755841.5, 1795755841_500_000_000),
        (1795755841123, 1795755841_123_000_000),
        (1795755841123456, 1795755841_123_456_000),
        (1795755841123456789, 1795755841_123_456_789),
        ("2026-11-27T05:04:01Z", 1795755841 * 10**9),
        ("2026-11-27T06:04:01+01:00", 1795755841 * 10**9),
        ("1795755841", 1795755841 * 10**9),
    ],
)
def test_time_field_units(raw, ns):
    assert parse_time(raw) == ns


@pytest.mark.parametrize("raw", ["2026-11-27T05:04:01", "yesterday", -5, True, [1]])
def test_time_field_refusals(raw):
    with pytest.raises(DecodeError) as info:
        parse_time(raw)
    assert info.value.reason == "bad_timestamp"


def test_json_device_from_payload_refuses_topic_characters():
    decoder = registry.get("json")({"device_field": "id"})
    ok = decoder.decode(Message("t", b'{"id": "gh 1", "t": 1}', {}, NOW))
    assert ok[0].device == "gh 1" and [r.metric for r in ok] == ["t"]
    for bad in (b'{"id": "a/b", "t": 1}', b'{"id": "a+", "t": 1}', b'{"id": "#", "t": 1}'):
        with pytest.raises(DecodeError) as info:
            decoder.decode(Message("t", bad, {}, NOW))
        assert info.value.reason == "bad_device"
    with pytest.raises(DecodeError) as info:
        decoder.decode(Message("t", b'{"id": "a\\u0000b", "t": 1}', {}, NOW))
    assert info.value.reason == "bad_device"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"[1, 2]", "bad_json"),
        (b"{}", "no_values"),
        (b'{"a": NaN}', "non_finite"),
        (b'{"a": Infinity}', "non_finite"),
        (b'{"a": 1e400}', "non_finite"),
        (b"[" * 5000 + b"]" * 5000, "too_deep"),
        (b'{"a": ' + b"1" * 5000 + b"}", "bad_json"),
        (b'{"a": ' + b"1" * 400 + b"}", "non_finite"),
        (b"\xfe\xff{}", "bad_utf8"),
    ],
)
def test_json_refusals(payload, reason):
    with pytest.raises(DecodeError) as info:
        decode("json", payload)
    assert info.value.reason == reason


def test_line_protocol_fields_become_metrics():
    readings = decode(
        "influx",
        b"# comment\n"
        b'climate,device=gh-1,zone=north temperature=21.5,n=3i,on=t,s="x y" 17\n'
        b"power value=5\n",
        fields={"device": "meter"},
        device_from_payload=True,
    )
    got = [(r.device, r.metric, r.value, r.ts, dict(r.tags)) for r in readings]
    assert got == [
        ("gh-1", "climate_temperature", 21.5, 17, {"zone": "north"}),
        ("gh-1", "climate_n", 3.0, 17, {"zone": "north"}),
        ("gh-1", "climate_on", True, 17, {"zone": "north"}),
        ("gh-1", "climate_s", "x y", 17, {"zone": "north"}),
        ("meter", "power", 5.0, NOW, {}),
    ]


def test_a_payload_naming_another_device_than_the_topic_is_refused_unless_allowed():
    line = b"climate,device=gh-2 temperature=21.5\n"
    same = decode("influx", b"climate,device=gh-1 temperature=1", fields={"device": "gh-1"})
    assert [r.device for r in same] == ["gh-1"]
    with pytest.raises(DecodeError) as info:
        decode("influx", b"a value=1\n" + line, fields={"device": "gh-1"})
    assert info.value.reason == "device_mismatch"
    with pytest.raises(DecodeError) as info:
        decode("json", b'{"id": "gh-2", "t": 1}', fields={"device": "gh-1"}, device_field="id")
    assert info.value.reason == "device_mismatch"
    allowed = decode("json", b'{"id": "gh-2", "t": 1}', fields={"device": "gh-1"},
                     device_field="id", device_from_payload=True)
    assert [r.device for r in allowed] == ["gh-2"]
    # Without {device} in the topic the payload names it, held to the same id rules.
    assert [r.device for r in decode("influx", line, fields={"metric": "m"})] == ["gh-2"]
    with pytest.raises(DecodeError) as info:
        decode("influx", b"climate,device=fan-1/set value=1", fields={"metric": "m"})
    assert info.value.reason == "bad_device"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"m", "bad_line_protocol"),
        (b"m v=", "bad_line_protocol"),
        (b'm v="open', "bad_line_protocol"),
        (b"m v=1 soon", "bad_timestamp"),
        (b"m v=nan", "non_finite"),
        (b"m v=abc", "bad_line_protocol"),
        (b"m a\x1bb=1", "bad_metric"),  # a field name is part of the metric
    ],
)
def test_line_protocol_refusals(payload, reason):
    with pytest.raises(DecodeError) as info:
        decode("influx", payload)
    assert info.value.reason == reason


names = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=20).filter(
    lambda s: not s.endswith("\\") and not s.startswith("#") and s.strip() == s and s
)
values = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=20),
)


@settings(max_examples=300)
@given(device=names, metric=names, tag=names, value=values)
def test_encoded_line_parses_back_to_the_same_reading(device, metric, tag, value):
    reading = Reading(device=device, metric=metric, value=value, ts=NOW, tags={"zone": tag})
    line = LineEncoder().encode(reading)
    measurement, tags, fields, ts = parse_line(line)
    assert measurement == metric and ts == NOW
    assert tags == {"device": device, "zone": tag}
    assert list(fields.values()) == [value]


def test_topic_templates():
    t = TopicTemplate("sensors/{device}/{metric}")
    assert t.filter == "sensors/+/+"
    assert t.match("sensors/gh-1/temperature") == {"device": "gh-1", "metric": "temperature"}
    assert t.match("sensors/gh-1") is None
    assert t.match("sensors//temperature") is None
    assert TopicTemplate("site/+/{device}/#").match("site/a/gh/x/y") == {"device": "gh"}
    assert TopicTemplate("tele/{device}/SENSOR").match("tele/p1/STATE") is None
    assert TopicTemplate("{device}/x").match("$SYS/x") is None
    for bad in ("a/#/b", "a/{x}y", "a/{x}/{x}", "a/b+", ""):
        with pytest.raises(TemplateError):
            TopicTemplate(bad)


def test_router_takes_first_matching_input_in_config_order():
    router = TopicRouter([(TopicTemplate("a/{device}"), "one"), (TopicTemplate("a/#"), "two")])
    assert router.route("a/x") == ("one", {"device": "x"})
    assert router.route("a/x/y") == ("two", {})
    assert router.route("b") is None
