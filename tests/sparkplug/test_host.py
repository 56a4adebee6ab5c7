"""The Sparkplug host state machine, message by message (no broker: it is pure).

Payloads come from the simulator's own encoder (``simulators/sparkplug.py``), which
shares only the schema with the decoder under test.
"""

from __future__ import annotations

import pytest

from devices.conventions.base import PendingCommand
from devices.conventions.sparkplug import SparkplugConvention
from devices.decoding import Message
from devices.sparkplug import payload as spb
from devices.sparkplug.host import SparkplugHost
from simulators.sparkplug import EdgeNode, MetricSpec
from wire import sparkplug_b_pb2 as pb

T0 = 1_795_755_841_000_000_000
MOTOR = "plant1:press-7:motor"
NODE = "plant1:press-7"


def fresh(**kwargs) -> tuple[SparkplugHost, EdgeNode]:
    return SparkplugHost(wait=lambda attempt: 5.0 * 2**attempt), EdgeNode(**kwargs)


def feed(host: SparkplugHost, messages, now=T0):
    return [host.receive(topic, payload, now) for topic, payload in messages]


def born(**kwargs) -> tuple[SparkplugHost, EdgeNode]:
    host, node = fresh(**kwargs)
    steps = feed(host, node.births())
    assert all(s.refusal is None for s in steps), [s.refusal for s in steps]
    return host, node


def test_births_define_every_scalar_datatype_with_units_and_timestamps():
    host, node = fresh()
    nbirth, dbirth = feed(host, node.births(now_ms=1_795_755_840_000))
    assert [a.device for a in nbirth.availability] == [NODE]
    readings = {r.metric: r for r in dbirth.readings}
    assert readings["Inputs/Temperature"].value == 21.5
    assert readings["Inputs/Temperature"].unit == "°C"
    assert readings["Inputs/Temperature"].tags == {
        "group": "plant1",
        "node": "press-7",
        "unit": "°C",
    }
    assert readings["Inputs/Temperature"].ts == 1_795_755_840_000_000_000
    assert readings["Inputs/Offset"].value == -3.0  # Int8
    assert readings["Inputs/Torque"].value == -1200.0  # Int16
    assert readings["Inputs/Position"].value == -70000.0  # Int32
    assert readings["Inputs/Energy"].value == -5e9  # Int64
    assert readings["Inputs/Load"].value == 200.0  # UInt8
    assert readings["Inputs/Rpm"].value == 1450.0
    assert readings["Inputs/Cycles"].value == 4e9  # UInt32
    assert readings["Inputs/Hours"].value == 12_345_678_901.0  # UInt64
    assert readings["Inputs/Running"].value is True
    assert readings["Inputs/Mode"].value == "auto"
    assert readings["Inputs/Serviced"].value == "2026-11-18T11:06:40.000Z"  # DateTime
    assert readings["Inputs/Note"].value == "checked by the night shift"  # Text
    assert {r.device for r in dbirth.readings} == {MOTOR}
    assert [a.device for a in dbirth.availability] == [MOTOR]
    # bdSeq and Node Control/* are the session's, not readings
    assert {r.metric for r in nbirth.readings} == {"Properties/Hardware Make", "Properties/Uptime"}


def test_data_by_alias_is_read_with_the_births_datatypes_and_units():
    host, node = born()
    (step,) = feed(host, [node.data("motor", {"Inputs/Temperature": 23.25, "Inputs/Offset": -7})])
    assert step.refusal is None
    assert {r.metric: (r.value, r.unit) for r in step.readings} == {
        "Inputs/Temperature": (23.25, "°C"),
        "Inputs/Offset": (-7.0, "mm"),
    }


def test_both_encodings_of_a_negative_small_integer_are_read():
    host, node = born()
    for raw in (0xF9, 0xFFFFFFF9):  # -7 as Int8: two's complement of 8 bits, or of 32
        payload = pb.Payload(timestamp=1, seq=node.seq + 1)
        node.seq += 1
        metric = payload.metrics.add(alias=node._entities["motor"].aliases["Inputs/Offset"])
        metric.int_value = raw
        (step,) = feed(host, [(node.topic("DDATA", "motor"), payload.SerializeToString())])
        assert [r.value for r in step.readings] == [-7.0]


def test_a_value_outside_its_datatype_is_not_stored_and_counted():
    host, node = born()
    payload = pb.Payload(timestamp=1, seq=node.seq + 1)
    node.seq += 1
    metric = payload.metrics.add(alias=node._entities["motor"].aliases["Inputs/Load"])
    metric.int_value = 300  # a UInt8
    (step,) = feed(host, [(node.topic("DDATA", "motor"), payload.SerializeToString())])
    assert step.refusal is None and step.readings == []
    assert host.skipped["out_of_range"] == 1


def test_a_sequence_gap_refuses_data_and_asks_for_a_rebirth_once():
    host, node = born()
    node.skip(2)
    gap, after = feed(
        host, [node.data("motor", {"Inputs/Rpm": 1}), node.data("motor", {"Inputs/Rpm": 2})]
    )
    assert gap.refusal is not None and gap.refusal.reason == "sequence_gap"
    assert "expected" in str(gap.refusal)
    assert [p.topic for p in gap.publishes] == ["spBv1.0/plant1/NCMD/press-7"]
    request = pb.Payload()
    request.ParseFromString(gap.publishes[0].payload)
    assert [(m.name, m.boolean_value) for m in request.metrics] == [("Node Control/Rebirth", True)]
    assert gap.publishes[0].qos == 0 and not gap.publishes[0].retain
    assert not request.HasField("seq") and request.timestamp == T0 // 1_000_000
    # meanwhile nothing is guessed, and the request is not repeated at once
    assert after.refusal is not None and after.refusal.reason == "awaiting_rebirth"
    assert after.readings == [] and after.publishes == []
    assert host.rebirths == {"sequence_gap": 1}
    # the rebirth answers: data flows again
    feed(host, node.births())
    (ok,) = feed(host, [node.data("motor", {"Inputs/Rpm": 3})])
    assert ok.refusal is None and [r.value for r in ok.readings] == [3.0]


def test_an_unknown_alias_and_data_before_birth_ask_for_a_rebirth():
    host, node = fresh()
    (early,) = feed(host, [node.data("motor", {"Inputs/Rpm": 1})])
    assert early.refusal is not None and early.refusal.reason == "before_birth"
    assert len(early.publishes) == 1
    host2, node2 = born()
    (unknown,) = feed(host2, [node2.unknown_alias("motor")])
    assert unknown.refusal is not None and unknown.refusal.reason == "unknown_alias"
    assert len(unknown.publishes) == 1
    assert host2.rebirths == {"unknown_alias": 1}


def test_an_unanswered_rebirth_is_asked_again_later_with_a_longer_wait():
    host, node = born()
    node.skip(1)
    (gap,) = feed(host, [node.data("motor", {"Inputs/Rpm": 1})])
    assert len(gap.publishes) == 1
    quiet = host.tick(T0 + 4_000_000_000)
    assert quiet.notes == [] and host.anomalies["rebirth_unanswered"] == 0
    late = host.tick(T0 + 5_000_000_000)
    assert host.anomalies["rebirth_unanswered"] == 1
    assert any("did not answer a rebirth request" in n for n in late.notes)
    (again,) = feed(host, [node.data("motor", {"Inputs/Rpm": 2})], now=T0 + 6_000_000_000)
    assert len(again.publishes) == 1  # asked again; the next wait is 10 s
    (not_yet,) = feed(host, [node.data("motor", {"Inputs/Rpm": 3})], now=T0 + 15_000_000_000)
    assert not_yet.publishes == []
    assert host.rebirths["awaiting_rebirth"] == 1


def test_a_matching_ndeath_sets_the_node_and_its_devices_offline():
    host, node = born()
    (death,) = feed(host, [node.death()])
    assert {(a.device, a.online, a.session) for a in death.availability} == {
        (NODE, False, True),
        (MOTOR, False, True),
    }
    (late,) = feed(host, [node.data("motor", {"Inputs/Rpm": 1})])
    assert late.refusal is not None and late.refusal.reason == "before_birth"


def test_an_ndeath_of_another_bdseq_is_checked_with_a_rebirth_request():
    host, node = born()
    stale = EdgeNode(bdseq=node.bdseq + 7).death()
    (step,) = feed(host, [stale])
    assert step.availability == []  # by the specification: a late death of an older session
    assert len(step.publishes) == 1 and host.anomalies["bdseq_mismatch"] == 1
    # alive: it answers, and stays online
    feed(host, node.births())
    assert host.nodes[("plant1", "press-7")].online
    # gone: no answer within the wait means the death was real
    host2, node2 = born()
    feed(host2, [EdgeNode(bdseq=node2.bdseq + 1).death()])
    step = host2.tick(T0 + 6_000_000_000)
    assert {(a.device, a.online) for a in step.availability} == {(NODE, False), (MOTOR, False)}


def test_a_ddeath_sets_only_its_device_offline():
    host, node = born()
    (step,) = feed(host, [node.device_death("motor")])
    assert [(a.device, a.online) for a in step.availability] == [(MOTOR, False)]
    assert host.nodes[("plant1", "press-7")].online


def test_an_nbirth_sets_the_devices_offline_until_their_dbirth():
    host, node = born()
    topic, body = node.births()[0]
    node.seq = 0  # the DBIRTHs are held back
    (step,) = feed(host, [(topic, body)])
    assert (MOTOR, False) in {(a.device, a.online) for a in step.availability}
    (early,) = feed(host, [node.data("motor", {"Inputs/Rpm": 9})])
    assert early.refusal is not None and early.refusal.reason == "before_birth"


def test_datasets_and_templates_are_refused_per_metric_with_a_reason():
    host, node = fresh()
    nbirth, (topic, body) = node.births()
    payload = pb.Payload()
    payload.ParseFromString(body)
    table = payload.metrics.add(name="Table", alias=999, datatype=pb.DataSet)
    table.dataset_value.num_of_columns = 1
    table.dataset_value.columns.append("a")
    feed(host, [nbirth])
    (step,) = feed(host, [(topic, payload.SerializeToString())])
    assert step.refusal is None
    assert "Table" not in {r.metric for r in step.readings}
    assert host.skipped["unsupported_datatype"] == 1
    with pytest.raises(spb.MetricRefused, match="DataSet metrics are not stored"):
        spb.value_of(payload.metrics[-1], pb.DataSet)


def test_commands_use_the_learned_aliases_and_check_the_datatype():
    host, node = born()
    (publish,) = host.command(MOTOR, {"Outputs/Speed": 75, "Outputs/Enabled": False}, T0)
    assert publish.topic == "spBv1.0/plant1/DCMD/press-7/motor" and publish.qos == 0
    payload = pb.Payload()
    payload.ParseFromString(publish.payload)
    aliases = node._entities["motor"].aliases
    assert [(m.alias, m.HasField("name"), m.datatype) for m in payload.metrics] == [
        (aliases["Outputs/Speed"], False, pb.Int32),
        (aliases["Outputs/Enabled"], False, pb.Boolean),
    ]
    assert payload.metrics[0].int_value == 75 and payload.metrics[1].boolean_value is False
    for bad in (
        {"Outputs/Speed": 2.5},
        {"Outputs/Speed": "fast"},
        {"Outputs/Enabled": 1},
        {"Outputs/Speed": 2**31},
        {"Nope": 1},
    ):
        with pytest.raises(spb.InvalidReading):
            host.command(MOTOR, bad, T0)
    with pytest.raises(spb.InvalidReading, match="no birth certificate"):
        host.command("plant1:press-9", {"x": 1}, T0)


def test_the_ddata_that_reports_the_written_value_confirms_the_command():
    host, node = born()
    pending = PendingCommand(MOTOR, "c-1", {"Outputs/Speed": 75})
    (publish,) = host.command(MOTOR, {"Outputs/Speed": 75}, T0)
    _, written = node.command(publish.topic, publish.payload)
    assert written == {"motor": {"Outputs/Speed": 75}}
    other = node.data("motor", {"Outputs/Speed": 50})
    assert SparkplugConvention(host=host).confirm(Message(*other, {}, T0), pending) is None
    echo = node.data("motor", {"Outputs/Speed": 75})
    confirmation = SparkplugConvention(host=host).confirm(Message(*echo, {}, T0), pending)
    assert confirmation is not None and confirmation.keys == {"Outputs/Speed"}


def test_wrapper_style_prefixed_names_are_resolved_and_reported_once():
    specs = [
        MetricSpec("DATA/temp", pb.Double, 20.0),
        MetricSpec("CMD/pump", pb.Boolean, False, writable=True),
    ]
    host, node = born(devices={"dev": specs}, aliases=False)
    payload = pb.Payload(timestamp=1, seq=node.seq + 1)
    node.seq += 1
    metric = payload.metrics.add(name="temp", datatype=pb.Double)
    metric.double_value = 22.0
    (step,) = feed(host, [(node.topic("DDATA", "dev"), payload.SerializeToString())])
    assert [(r.metric, r.value) for r in step.readings] == [("DATA/temp", 22.0)]
    assert host.anomalies["bare_names"] == 1 and len(step.notes) == 1
    (publish,) = host.command("plant1:press-7:dev", {"CMD/pump": True}, T0)
    sent = pb.Payload()
    sent.ParseFromString(publish.payload)
    assert [m.name for m in sent.metrics] == ["pump"]  # what the library understands


def test_arbitrary_topics_and_garbage_payloads_are_refusals_not_errors():
    host, _ = born()
    for topic, body in [
        ("spBv1.0/g/NDATA/n", b"\xff\xff\xff"),
        ("spBv1.0/g/XDATA/n", b""),
        ("spBv1.0", b""),
        ("other/topic", b""),
        ("spBv1.0/g/DDATA/n", b""),
    ]:
        step = host.receive(topic, body, T0)
        assert step.refusal is not None and step.readings == []
    assert host.receive("spBv1.0/STATE/outpost", b'{"online": true}', T0).refusal is None
