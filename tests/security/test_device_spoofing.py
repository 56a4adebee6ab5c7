"""One device speaking for another, or naming a device that is a topic in disguise.

The broker's ACL lets a device publish on its own topics only (``deploy/mosquitto/acl``:
``sensors/%u/#``). A payload that names a device — a line-protocol ``device`` tag, a
JSON ``device_field`` — must not undo that: where the topic names the device, the topic
wins and a payload naming another is dead-lettered (``device_mismatch``), unless the
input is configured to trust its payloads (``device_from_payload: true``, for a
collector such as Telegraf that forwards many devices on one topic). A device id from
anywhere is held to the same rules, so ``fan-1/set``, ``+`` or ``#`` never reach an
alert or command topic.
"""

from __future__ import annotations

import time

from tests.security.ingest import IngestRig

ANY_HOT = """\
rules:
  - name: hot
    match: {metric: climate_temperature}
    when: value > 30
    severity: warning
"""

INPUTS = [
    {"topic": "telegraf/{device}", "format": "influx"},
    {"topic": "sensors/{device}", "format": "json", "device_field": "id"},
    {"topic": "site/+", "format": "influx"},  # no {device}: the payload names it
]


def test_a_device_cannot_speak_for_another_or_name_a_topic(
    tmp_path, mosquitto, influxdb, influx_db
):
    (tmp_path / "rules.d").mkdir()
    (tmp_path / "rules.d" / "hot.yaml").write_text(ANY_HOT)
    spoofs = [
        ("telegraf/gh-1", "climate,device=gh-2 temperature=35", "device_mismatch"),
        ("sensors/gh-1", '{"id": "gh-2", "climate_temperature": 35}', "device_mismatch"),
        ("telegraf/gh-1", "ok value=1\nclimate,device=gh-2 temperature=35", "device_mismatch"),
        ("site/a", "climate,device=fan-1/set temperature=35", "bad_device"),
        ("site/a", "climate,device=+ temperature=35", "bad_device"),
        ("site/a", "climate,device=# temperature=35", "bad_device"),
        ("site/a", "climate,device=../fan-1 temperature=35", "bad_device"),
        ("site/a", 'climate,device=gh-1\\ ' + "x" * 200 + " temperature=35", "bad_device"),
    ]
    with IngestRig(
        tmp_path, mosquitto, influxdb, influx_db, inputs=INPUTS, rules=["rules.d/*.yaml"]
    ) as rig:
        alerts = rig.watcher
        assert alerts is not None
        alerts.client.subscribe("outpost/alerts/#", qos=1)
        time.sleep(0.2)
        for topic, payload, _ in spoofs:
            rig.publish(topic, payload)
        # What is allowed: the topic's own device, a payload-named device where the topic
        # names none.
        rig.publish("telegraf/gh-1", "climate,device=gh-1 temperature=20")
        rig.publish("site/a", "climate,device=gh-3 temperature=20")
        stored = rig.wait_stored(2, "climate_temperature")
        received = rig.deadletters(len(spoofs) + 2, timeout=10)
        assert rig.alive()
        counts = rig.deadletter_counts()

    letters = [m for m in received if "reason" in m]
    assert [(d["topic"], d["payload"], d["reason"]) for d in letters] == spoofs
    fired = [m for m in received if "reason" not in m]
    assert fired == []  # nothing was hot for anyone: no alert for gh-2, fan-1/set, + or #
    assert counts["device_mismatch"] == 3 and counts["bad_device"] == 5
    assert sorted(r["tags"]["device"] for r in stored) == ["gh-1", "gh-3"]
    assert {r["measurement"] for r in rig.stored()} == {"climate_temperature"}


def test_an_input_that_trusts_its_payloads_lets_them_name_the_device(
    tmp_path, mosquitto, influxdb, influx_db
):
    inputs = [
        {"topic": "collector/{device}", "format": "influx", "device_from_payload": True},
        {"topic": "relay/{device}", "format": "json", "device_field": "id",
         "device_from_payload": True},
    ]
    with IngestRig(tmp_path, mosquitto, influxdb, influx_db, inputs=inputs) as rig:
        rig.publish("collector/telegraf", "climate,device=gh-4 temperature=20")
        rig.publish("relay/hub", '{"id": "gh-5", "climate_temperature": 21}')
        rig.publish("relay/hub", '{"climate_temperature": 22}')  # no id: the topic's
        # Trusted, not unchecked: the id rules still hold.
        rig.publish("collector/telegraf", "climate,device=fan-1/set temperature=20")
        stored = rig.wait_stored(3, "climate_temperature")
        [letter] = rig.deadletters(1)
    assert sorted(r["tags"]["device"] for r in stored) == ["gh-4", "gh-5", "hub"]
    assert letter["reason"] == "bad_device"
