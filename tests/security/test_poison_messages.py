"""Poison messages: input that used to stop the gateway, again on every restart.

A QoS 1 message is acknowledged only once handled, so a message that kills the gateway
is redelivered by the broker when it starts again, and kills it again. Each test sends
the message to the real gateway process and checks that it is dead-lettered with a
reason, counted, and that the gateway goes on (and stays up across a restart).
"""

from __future__ import annotations

import textwrap
import time

from tests.gateway.harness import REPO
from tests.reliability.rig import by_label, scrape
from tests.security.ingest import IngestRig

JSON_INPUTS = [
    {"topic": "sensors/{device}/{metric}", "format": "value"},
    {"topic": "sensors/{device}", "format": "json"},
    {"topic": "site/+", "format": "json", "device_field": "id"},
    {"topic": "z2m/{device}", "format": "zigbee2mqtt"},
]

# A lone UTF-16 surrogate cannot be encoded as UTF-8, yet JSON can spell one ("\ud800").
LONE_SURROGATES = [
    ("sensors/gh-1", r'{"temperature": "\ud800"}'),  # a string value
    ("sensors/gh-1", r'{"\udfff": 1}'),  # a key, so a metric name
    ("site/gh", r'{"id": "gh-\ud800", "temperature": 1}'),  # a device id from the payload
    ("sensors/gh-1/mode", r'"\ud800"'),  # a quoted value payload
    ("z2m/plug-1", r'{"state": "\udbff"}'),  # a device convention's payload
    ("z2m/plug-1", b'{"state": "\xed\xa0\x80"}'),  # the surrogate as (invalid) UTF-8 bytes
]


def test_lone_surrogates_are_refused_at_decode_and_do_not_come_back(
    tmp_path, mosquitto, influxdb, influx_db
):
    rig = IngestRig(
        tmp_path, mosquitto, influxdb, influx_db,
        mqtt={"client_id": "outpost-poison"}, inputs=JSON_INPUTS,
    )
    with rig:
        for topic, payload in LONE_SURROGATES:
            rig.publish(topic, payload)
        rig.publish("sensors/gh-1/after", "1")
        letters = rig.deadletters(len(LONE_SURROGATES))
        rig.wait_stored(1, "after")
        assert rig.alive(), rig.gateway.log()
        assert [(d["topic"], d["reason"]) for d in letters] == [
            (t, "invalid_text") for t, _ in LONE_SURROGATES[:-1]
        ] + [("z2m/plug-1", "bad_utf8")]
        counts = rig.deadletter_counts()
        assert counts["invalid_text"] == len(LONE_SURROGATES) - 1
        assert counts["bad_utf8"] == 1
        rig.gateway.stop()

        # The messages were acknowledged: a restart with the same session gets none again.
        rig.gateway.start()
        time.sleep(2.0)
        assert rig.alive(), rig.gateway.log()
        assert rig.no_more_deadletters() == []
    assert {r["measurement"] for r in rig.stored()} == {"after"}


FAULTY_PLUGIN = textwrap.dedent(
    '''
    """A payload format with two bugs, loaded into the gateway process at start."""
    from devices.formats.registry import register
    from devices.model import Reading


    class Faulty:
        def decode(self, message):
            if message.payload == b"bug-in-decode":
                return {}["missing"]  # KeyError while decoding
            value = object() if message.payload == b"bug-after-decode" else 1.0
            # A reading the line encoder cannot handle: fails on the event loop, later.
            return [Reading(message.fields["device"], "faulty", value, message.received_ns)]


    register("faulty", lambda options: Faulty())
    '''
)


def test_an_unexpected_exception_dead_letters_one_message_and_ingest_goes_on(
    tmp_path, mosquitto, influxdb, influx_db
):
    plugin = tmp_path / "plugin"
    plugin.mkdir()
    (plugin / "sitecustomize.py").write_text(FAULTY_PLUGIN)
    env = {"PYTHONPATH": f"{plugin}:{REPO}"}
    inputs = [
        {"topic": "faulty/{device}", "format": "faulty"},
        {"topic": "sensors/{device}/{metric}", "format": "value"},
    ]
    with IngestRig(tmp_path, mosquitto, influxdb, influx_db, env=env, inputs=inputs) as rig:
        for payload in (b"bug-in-decode", b"bug-after-decode", b"bug-in-decode", b"ok"):
            rig.publish("faulty/gh-1", payload)
            rig.publish("sensors/gh-1/after", "1")
        letters = rig.deadletters(3)
        rows = rig.wait_stored(1, "faulty")
        rig.wait_stored(1, "after")
        assert rig.alive(), rig.gateway.log()
        # A decoder's failure is refused on arrival, the later one when the reading is
        # written: dead letters need not come in message order.
        assert sorted((d["reason"], d["detail"].split(":")[0], d["payload"]) for d in letters) == [
            ("internal_error", "KeyError", "bug-in-decode"),
            ("internal_error", "KeyError", "bug-in-decode"),
            ("internal_error", "TypeError", "bug-after-decode"),
        ]
        assert rig.deadletter_counts()["internal_error"] == 3
    assert [r["fields"] for r in rows] == [{"value": 1.0}]
    log = rig.gateway.log()
    # The traceback of each failure once, not once per message.
    assert log.count("Traceback (most recent call last)") == 2
    assert log.count("\nKeyError: 'missing'\n") == 1


def test_an_influxdb_answer_the_writer_cannot_read_does_not_stop_the_gateway(
    tmp_path, mosquitto, influxdb, influx_db, fault_proxy
):
    # A login page in front of InfluxDB answers 200 with HTML where JSON was expected.
    fault_proxy.set_fault(
        status=200, path="/query", count=None, body="<html>Please log in</html>"
    )
    with IngestRig(
        tmp_path, mosquitto, influxdb, influx_db, influx={"url": fault_proxy.url}
    ) as rig:
        for i in range(5):
            rig.publish("sensors/gh-1/seq", str(i))
        rig.gateway.wait_log("InfluxDB write failed", timeout=15)
        time.sleep(2.0)
        assert rig.alive(), rig.gateway.log()
        errors = by_label(scrape(rig.metrics_url), "outpost_influx_errors_total", "kind")
        assert errors["internal"] >= 1
        fault_proxy.clear()
        rows = rig.wait_stored(5, "seq", timeout=30)
    assert sorted(r["fields"]["value"] for r in rows) == [0, 1, 2, 3, 4]
    log = rig.gateway.log()
    assert log.count("Traceback (most recent call last)") == 1
