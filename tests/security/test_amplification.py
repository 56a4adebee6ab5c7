"""Amplification: one small message must not become thousands of readings or series.

A 42 KB JSON array flattens to one metric per index (``a_0`` … ``a_21005``): each a
series InfluxDB indexes for as long as it keeps data. ``max_readings_per_message``
(default 256) caps what one message may decode to; ``influx.max_series`` caps the
distinct series the gateway writes. Both refusals are whole: a message is stored
whole or not at all.
"""

from __future__ import annotations

import json

from tests.reliability.rig import scrape
from tests.security.ingest import IngestRig

JSON_INPUTS = [
    {"topic": "sensors/{device}/{metric}", "format": "value"},
    {"topic": "sensors/{device}", "format": "json"},
]


def _array(n: int) -> str:
    return '{"a": [' + ",".join(["0"] * n) + "]}"


def test_one_message_cannot_decode_to_more_than_max_readings_per_message(
    tmp_path, mosquitto, influxdb, influx_db
):
    amplified = _array(21_006)
    assert len(amplified) < 64 * 1024  # within the default max_payload
    with IngestRig(tmp_path, mosquitto, influxdb, influx_db, inputs=JSON_INPUTS) as rig:
        rig.publish("sensors/gh-1", amplified)
        rig.publish("sensors/gh-2", _array(257))
        rig.publish("sensors/gh-3", _array(256))
        rig.publish("sensors/gh-1/after", "1")
        letters = rig.deadletters(2)
        rig.wait_stored(1, "after")
        stored = rig.wait_stored(256 + 1)
        counts = rig.deadletter_counts()
        assert rig.alive()
    assert [(d["topic"], d["reason"]) for d in letters] == [
        ("sensors/gh-1", "too_many_readings"),
        ("sensors/gh-2", "too_many_readings"),
    ]
    assert letters[0]["detail"] == "more than 256 readings; max_readings_per_message is 256"
    assert counts["too_many_readings"] == 2
    assert sorted({r["tags"]["device"] for r in stored}) == ["gh-1", "gh-3"]
    assert len(stored) == 257  # the 256 of gh-3 and "after": nothing of the refused ones


def test_new_series_past_max_series_are_refused_and_known_ones_go_on(
    tmp_path, mosquitto, influxdb, influx_db
):
    with IngestRig(
        tmp_path, mosquitto, influxdb, influx_db, inputs=JSON_INPUTS, influx={"max_series": 20}
    ) as rig:
        for i in range(20):
            rig.publish(f"sensors/d{i}/temperature", "20")
        rig.wait_stored(20, "temperature")
        rig.publish("sensors/d20/temperature", "21")  # a 21st series
        rig.publish("sensors/d0", json.dumps({"temperature": 22, "humidity": 40}))  # one new
        rig.publish("sensors/d0/temperature", "23")  # a known series
        letters = rig.deadletters(2)
        rows = rig.wait_stored(21, "temperature")
        series = scrape(rig.metrics_url)["outpost_series"]
        counts = rig.deadletter_counts()
    assert [(d["topic"], d["reason"]) for d in letters] == [
        ("sensors/d20/temperature", "too_many_series"),
        ("sensors/d0", "too_many_series"),
    ]
    assert counts["too_many_series"] == 2
    assert series == 20
    assert sorted(r["fields"]["value"] for r in rows if r["tags"]["device"] == "d0") == [20, 23]
    assert {r["measurement"] for r in rig.stored()} == {"temperature"}  # no humidity at all


def test_a_message_with_one_unwritable_reading_is_refused_whole(
    tmp_path, mosquitto, influxdb, influx_db
):
    # Line protocol cannot carry a measurement starting with "#" (a comment line) nor a
    # name ending in a backslash: the whole message goes to the dead-letter topic.
    bad = [
        ("sensors/gh-1", '{"temperature": 21, "#note": 1}'),
        ("sensors/gh-2", '{"temperature": 21, "odd\\\\": 1}'),
    ]
    with IngestRig(tmp_path, mosquitto, influxdb, influx_db, inputs=JSON_INPUTS) as rig:
        for topic, payload in bad:
            rig.publish(topic, payload)
        rig.publish("sensors/gh-3", '{"temperature": 21}')
        rig.publish("sensors/gh-3/after", "1")
        letters = rig.deadletters(2)
        rig.wait_stored(1, "after")
    assert [(d["topic"], d["payload"], d["reason"]) for d in letters] == [
        (topic, payload, "unstorable_name") for topic, payload in bad
    ]
    assert [r["tags"]["device"] for r in rig.stored("temperature")] == ["gh-3"]
    assert {r["measurement"] for r in rig.stored()} == {"temperature", "after"}
