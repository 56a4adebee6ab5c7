"""Device times outside what InfluxDB stores (1970-2262) are refused as bad_timestamp by
every decoder that reads a time from the payload — never another exception, never a
time InfluxDB would refuse the whole batch for. Found by tests/fuzz/test_fuzz_decoders.py."""

from __future__ import annotations

import json

import pytest

from devices import catalog
from devices.decoding import DecodeError, Message

NOW = 1_795_755_841_000_000_000


def _decode(fmt: str, topic: str, body: dict, options: dict | None = None):
    decoder = catalog.get(fmt)(options or {})
    return decoder.decode(Message(topic, json.dumps(body).encode(), {"device": "gh-1"}, NOW))


CASES = [
    ("outpost", "sensors/gh-1", lambda t: {"ts": t, "temperature": 1}, {}),
    ("json", "sensors/gh-1", lambda t: {"ts": t, "temperature": 1}, {"time_field": "ts"}),
    ("shelly_gen2", "gh-1/events/rpc",
     lambda t: {"method": "NotifyStatus", "params": {"ts": t, "switch:0": {"apower": 5}}}, {}),
]  # fmt: skip


@pytest.mark.parametrize(("fmt", "topic", "body", "options"), CASES)
@pytest.mark.parametrize("when", [-5, 1e300, 9223372037.0, 2**63, 1e16, "1969-12-31T23:59:59Z"])
def test_a_time_outside_1970_to_2262_is_refused(fmt, topic, body, options, when):
    if fmt == "shelly_gen2" and isinstance(when, str):
        return  # Shelly times are numbers only
    with pytest.raises(DecodeError) as caught:
        _decode(fmt, topic, body(when), options)
    assert caught.value.reason == "bad_timestamp"


@pytest.mark.parametrize(("fmt", "topic", "body", "options"), CASES)
def test_a_time_within_is_kept(fmt, topic, body, options):
    [reading, *_] = _decode(fmt, topic, body(1795755841.5), options)
    assert reading.ts == 1_795_755_841_500_000_000


@pytest.mark.parametrize(
    "when", ["0001-01-01T00:00:00", "1960-05-01T00:00:00", "9999-12-31T23:59:59"]
)
def test_a_tasmota_time_outside_is_refused(when):
    with pytest.raises(DecodeError) as caught:
        _decode("tasmota", "tele/gh-1/SENSOR", {"Time": when, "AM2301": {"Temperature": 21}},
                {"time": "local"})
    assert caught.value.reason == "bad_timestamp"
