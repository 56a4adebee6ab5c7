"""Sparkplug B end to end: the simulated edge node, the real Mosquitto, the real gateway
process and the real influxd.

Each scenario is the product's promise seen from outside: what lands in InfluxDB,
what the broker carries (rebirth requests, STATE, DCMD), what the API and the rules
say about a node that died.
"""

from __future__ import annotations

import base64
import json
import signal
import time

from simulators.sparkplug import EdgeNode, SimulatedEdgeNode
from tests.devices.conftest import Subscriber
from tests.sparkplug.conftest import HOST_ID, MOTOR, NODE, until
from wire import sparkplug_b_pb2 as pb


def _node(mosquitto, **kwargs) -> SimulatedEdgeNode:
    return SimulatedEdgeNode(EdgeNode(), "127.0.0.1", mosquitto.port, **kwargs).start()


def test_births_and_aliased_data_land_in_influxdb_with_units(
    spb_gateway, mosquitto, influxdb, influx_db
):
    gateway = spb_gateway()
    node = _node(mosquitto)
    try:
        until(lambda: (gateway.device(MOTOR) or {}).get("online"), what="the DBIRTH")
        for temperature in (22.0, 22.5, 23.0):
            node.send_data("motor", {"Inputs/Temperature": temperature, "Inputs/Offset": -5})
            time.sleep(0.05)
        rows = influxdb.wait_for_count(influx_db, 4, measurement="Inputs/Temperature")
    finally:
        node.stop()
    assert [r["fields"]["value"] for r in rows] == [21.5, 22, 22.5, 23]  # the birth, then data
    assert rows[0]["tags"] == {"device": MOTOR, "group": "plant1", "node": "press-7", "unit": "°C"}
    offsets = influxdb.points(influx_db, "Inputs/Offset")
    assert [r["fields"]["value"] for r in offsets] == [-3, -5, -5, -5]
    # every scalar datatype of the birth is stored, each in its field
    assert influxdb.field_types(influx_db, "Inputs/Running") == {"state": "boolean"}
    assert influxdb.field_types(influx_db, "Inputs/Note") == {"text": "string"}
    assert influxdb.points(influx_db, "Inputs/Serviced")[0]["fields"]["text"].startswith("2026-")
    assert influxdb.points(influx_db, "Inputs/Hours")[0]["fields"]["value"] == 12_345_678_901
    # units and the session in the device registry
    motor = gateway.device(MOTOR)
    assert motor is not None and motor["convention"] == "sparkplug"
    assert motor["metrics"]["Inputs/Temperature"]["unit"] == "°C"
    assert motor["metrics"]["Inputs/Pressure"]["unit"] == "bar"
    assert motor["online_reason"] in ("session", "availability")


def test_a_sequence_gap_is_dead_lettered_and_answered_with_a_rebirth_request(
    spb_gateway, mosquitto, influxdb, influx_db
):
    gateway = spb_gateway()
    watch = Subscriber(mosquitto.port, "spBv1.0/plant1/NCMD/#", "outpost/deadletter")
    node = _node(mosquitto)
    try:
        until(lambda: (gateway.device(MOTOR) or {}).get("online"), what="the DBIRTH")
        node.model.skip(3)  # three messages lost
        node.send_data("motor", {"Inputs/Temperature": 99.0})
        (request,) = until(lambda: watch.on("spBv1.0/plant1/NCMD/press-7"), what="a rebirth")
        until(lambda: node.rebirths == 1, what="the node's rebirth")
        node.send_data("motor", {"Inputs/Temperature": 30.0})
        rows = influxdb.wait_for_count(influx_db, 3, measurement="Inputs/Temperature")
        letters = until(lambda: watch.on("outpost/deadletter"), what="the dead letter")
    finally:
        node.stop()
        watch.close()
    payload = pb.Payload()
    payload.ParseFromString(request.payload)
    assert [(m.name, m.boolean_value) for m in payload.metrics] == [("Node Control/Rebirth", True)]
    assert not request.retain
    letter = json.loads(letters[0].payload)
    assert letter["reason"] == "sequence_gap" and letter["topic"].endswith("DDATA/press-7/motor")
    assert letter["encoding"] == "base64"  # the protobuf, kept whole for a replay
    refused = pb.Payload()
    refused.ParseFromString(base64.b64decode(letter["payload"]))
    # the message after the gap is never stored; the rebirth reports the node's current
    # value (99) at its own time, then data flows again
    assert [r["fields"]["value"] for r in rows] == [21.5, 99, 30]
    assert refused.metrics[0].timestamp * 1_000_000 not in {r["time"] for r in rows}
    metric = 'outpost_sparkplug_rebirth_requests_total{reason="sequence_gap"}'
    assert gateway.metric(metric) == 1.0
    assert gateway.metric('outpost_deadletters_total{reason="sequence_gap"}') == 1.0


def test_data_from_a_node_born_before_the_gateway_started_asks_for_its_birth(
    spb_gateway, mosquitto, influxdb, influx_db
):
    node = _node(mosquitto)  # born while no host listened
    try:
        gateway = spb_gateway()
        node.send_data("motor", {"Inputs/Temperature": 40.0})  # before any birth the host saw
        until(lambda: node.rebirths == 1, what="a rebirth request")
        node.send_data("motor", {"Inputs/Temperature": 41.0})
        rows = influxdb.wait_for_count(influx_db, 2, measurement="Inputs/Temperature")
    finally:
        node.stop()
    assert [r["fields"]["value"] for r in rows] == [40, 41]  # the rebirth carries 40, then 41
    assert gateway.metric('outpost_deadletters_total{reason="before_birth"}') == 1.0


def test_a_dead_node_is_offline_and_its_silence_fires_the_absent_rule(spb_gateway, mosquitto):
    gateway = spb_gateway()
    alerts = Subscriber(mosquitto.port, "outpost/alerts/#")
    node = _node(mosquitto)
    try:
        until(lambda: (gateway.device(MOTOR) or {}).get("online"), what="the DBIRTH")
        for _ in range(5):
            node.send_data("motor", {"Inputs/Temperature": 25.0})
            time.sleep(0.1)
        node.kill()  # no DISCONNECT: the broker delivers the NDEATH (the will)
        dead = until(lambda: _offline(gateway, MOTOR) and _offline(gateway, NODE), what="offline")
        firing = until(
            lambda: [
                m
                for m in alerts.on(f"outpost/alerts/motor_silent/{MOTOR}")
                if json.loads(m.payload)["state"] == "firing"
            ],
            timeout=15,
            what="the absent() alert",
        )
    finally:
        alerts.close()
    assert dead["online_reason"] == "availability"
    assert json.loads(firing[0].payload)["severity"] == "critical"


def _offline(gateway, device):
    entry = gateway.device(device)
    return entry if entry is not None and entry["online"] is False else None


def test_a_command_goes_out_as_a_dcmd_and_the_ddata_confirms_it(spb_gateway, mosquitto):
    gateway = spb_gateway()
    node = _node(mosquitto)
    try:
        until(lambda: (gateway.device(MOTOR) or {}).get("online"), what="the DBIRTH")
        status, answer = gateway.command(MOTOR, {"Outputs/Speed": 75})
        assert status == 202 and answer["outcome"] == "sent", answer
        until(
            lambda: node.model._entities["motor"].metrics["Outputs/Speed"].value == 75,
            what="the DCMD at the node",
        )
        until(lambda: _outcome(gateway, "acked"), what="the acknowledgement")
        # the birth's datatype is checked too: Outputs/Enabled is a Boolean
        status, answer = gateway.command(MOTOR, {"Outputs/Enabled": 5})
    finally:
        node.stop()
    dcmds = [t for t, _ in node.commands if t == "spBv1.0/plant1/DCMD/press-7/motor"]
    assert len(dcmds) == 1
    sent = pb.Payload()
    sent.ParseFromString(node.commands[0][1])
    assert [(m.alias, m.int_value) for m in sent.metrics] == [
        (node.model._entities["motor"].aliases["Outputs/Speed"], 75)
    ]
    assert answer["outcome"] == "refused" and "is not a Boolean" in answer["detail"], answer
    assert [c["detail"] for c in _outcome(gateway, "refused")] == ["bad_value"]


def _outcome(gateway, outcome):
    recent = gateway.get("/api/v1/commands?limit=10")["recent"]
    return [c for c in recent if c["outcome"] == outcome]


def test_the_gateway_announces_its_state_and_its_will_says_offline(spb_gateway, mosquitto):
    watch = Subscriber(mosquitto.port, f"spBv1.0/STATE/{HOST_ID}")
    waiting = _node(mosquitto, primary_host=HOST_ID)  # births only once the host is online
    try:
        time.sleep(0.5)
        assert not waiting.model.born
        gateway = spb_gateway()
        online = until(lambda: watch.on(f"spBv1.0/STATE/{HOST_ID}"), what="STATE")
        until(lambda: waiting.model.born, what="the birth after STATE online")
        until(lambda: (gateway.device(MOTOR) or {}).get("online"), what="the DBIRTH")
        gateway.process.stop(signal.SIGKILL)  # the broker publishes the will
        states = until(lambda: watch.on(f"spBv1.0/STATE/{HOST_ID}")[1:], what="the will")
        late = Subscriber(mosquitto.port, f"spBv1.0/STATE/{HOST_ID}")
        kept = until(lambda: late.on(f"spBv1.0/STATE/{HOST_ID}"), what="the retained will")
        late.close()
    finally:
        waiting.stop()
        watch.close()
    birth, death = json.loads(online[0].payload), json.loads(states[0].payload)
    assert birth["online"] is True and death["online"] is False
    assert birth["timestamp"] == death["timestamp"]  # the will of the session it announced
    assert kept[0].retain and json.loads(kept[0].payload) == death
    assert abs(birth["timestamp"] / 1000 - time.time()) < 60


def test_an_offline_state_of_its_own_is_answered_and_a_clean_stop_says_offline(
    spb_gateway, mosquitto
):
    topic = f"spBv1.0/STATE/{HOST_ID}"
    watch = Subscriber(mosquitto.port, topic)
    try:
        gateway = spb_gateway()
        birth = json.loads(until(lambda: watch.on(topic), what="STATE")[0].payload)
        late = Subscriber(mosquitto.port, topic)  # subscribes after it: gets the retained one
        retained = until(lambda: late.on(topic), what="the retained STATE")
        late.close()
        stale = {"online": False, "timestamp": birth["timestamp"] - 60_000}
        watch.publish(topic, json.dumps(stale))  # an older session's will, delivered late
        answers = until(
            lambda: [m for m in watch.on(topic)[2:] if json.loads(m.payload)["online"]],
            what="online again",
        )
        gateway.process.stop()  # SIGTERM: a clean stop
        farewell = until(
            lambda: [
                m
                for m in watch.on(topic)
                if not json.loads(m.payload)["online"]
                and json.loads(m.payload)["timestamp"] >= birth["timestamp"]
            ],
            what="offline",
        )
    finally:
        watch.close()
    assert json.loads(answers[0].payload) == birth  # the same session, the same timestamp
    assert retained[0].retain and json.loads(retained[0].payload) == birth
    assert json.loads(farewell[0].payload)["timestamp"] >= birth["timestamp"]
