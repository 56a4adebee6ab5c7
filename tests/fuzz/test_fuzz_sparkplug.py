"""The Sparkplug B decoder, fed arbitrary bytes, raises nothing but DecodeError.

Three layers are fuzzed: the payload parser with every metric read as every datatype
(:mod:`devices.sparkplug.payload`), the host state machine on every Sparkplug message
type (arbitrary bytes, and well-formed payloads with arbitrary fields, after a real
birth so that aliases and sequence numbers are in play), and the convention as the
pipeline calls it. Whatever it returns must be readings the gateway can carry.

By default each test runs a few dozen examples; ``OUTPOST_FUZZ_EXAMPLES=100000`` runs
as many as you like.
"""

from __future__ import annotations

import contextlib
import math
import os

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from devices.conventions.sparkplug import SparkplugConvention
from devices.decoding import DecodeError, Message
from devices.model import Reading, check_device_id, check_identifier
from devices.sparkplug import payload as spb
from devices.sparkplug.host import SparkplugHost
from simulators.sparkplug import EdgeNode
from wire import sparkplug_b_pb2 as pb

EXAMPLES = int(os.environ.get("OUTPOST_FUZZ_EXAMPLES", "60"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
NOW = 1_795_755_841_000_000_000
KINDS = ["NBIRTH", "DBIRTH", "NDATA", "DDATA", "NDEATH", "DDEATH", "NCMD", "DCMD"]


def _topic(kind: str) -> str:
    device = "/motor" if kind.startswith("D") else ""
    return f"spBv1.0/plant1/{kind}/press-7{device}"


def _carryable(readings: list[Reading]) -> None:
    for reading in readings:
        check_device_id(reading.device)
        check_identifier("metric", reading.metric)
        assert isinstance(reading.value, (float, bool, str))
        if isinstance(reading.value, float):
            assert math.isfinite(reading.value)
        assert isinstance(reading.ts, int) and reading.ts >= 0


def _born() -> tuple[SparkplugHost, EdgeNode]:
    host, node = SparkplugHost(), EdgeNode()
    for topic, body in node.births():
        assert host.receive(topic, body, NOW).refusal is None
    return host, node


@FUZZ
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_parse_or_raise_decode_error(data: bytes) -> None:
    try:
        payload = spb.parse(data)
    except DecodeError:
        return
    for metric in payload.metrics:
        for datatype in range(0, 40):
            with contextlib.suppress(DecodeError):
                spb.value_of(metric, datatype)
        spb.unit_of(metric)


@FUZZ
@given(st.sampled_from(KINDS), st.binary(max_size=1024))
def test_arbitrary_bytes_on_every_message_type_never_break_the_host(kind: str, data: bytes):
    host, _ = _born()
    step = host.receive(_topic(kind), data, NOW)
    _carryable(step.readings)
    assert step.refusal is None or isinstance(step.refusal, DecodeError)


scalar_fields = st.one_of(
    st.tuples(st.just("int_value"), st.integers(0, 2**32 - 1)),
    st.tuples(st.just("long_value"), st.integers(0, 2**64 - 1)),
    st.tuples(st.just("float_value"), st.floats(width=32)),
    st.tuples(st.just("double_value"), st.floats()),
    st.tuples(st.just("boolean_value"), st.booleans()),
    st.tuples(st.just("string_value"), st.text(max_size=20)),
    st.tuples(st.just("bytes_value"), st.binary(max_size=20)),
    st.just(None),
)
metrics = st.lists(
    st.tuples(
        st.one_of(st.none(), st.text(max_size=12), st.sampled_from(["bdSeq", "Inputs/Rpm"])),
        st.one_of(st.none(), st.integers(0, 40)),  # alias: the birth's are 1..19
        st.one_of(st.none(), st.integers(0, 2**64 - 1)),  # timestamp
        st.one_of(st.none(), st.integers(0, 40)),  # datatype
        scalar_fields,
        st.booleans(),  # is_null
    ),
    max_size=6,
)


@FUZZ
@given(
    st.sampled_from(KINDS),
    st.one_of(st.none(), st.integers(0, 2**64 - 1)),
    st.one_of(st.none(), st.integers(0, 300)),
    metrics,
)
# found by this test: an NDEATH whose bdSeq metric is typed DateTime
@example("NDEATH", None, None, [("bdSeq", None, None, pb.DateTime, ("long_value", 5), False)])
def test_well_formed_payloads_with_arbitrary_fields_never_break_the_host(kind, ts, seq, ms):
    host, _ = _born()
    payload = pb.Payload()
    if ts is not None:
        payload.timestamp = ts
    if seq is not None:
        payload.seq = seq
    for name, alias, mts, datatype, value, is_null in ms:
        metric = payload.metrics.add()
        if name is not None:
            metric.name = name
        if alias is not None:
            metric.alias = alias
        if mts is not None:
            metric.timestamp = mts
        if datatype is not None:
            metric.datatype = datatype
        if value is not None:
            setattr(metric, value[0], value[1])
        metric.is_null = is_null
    for _ in range(2):  # a second message lands on whatever state the first one left
        step = host.receive(_topic(kind), payload.SerializeToString(), NOW)
        _carryable(step.readings)
    host.tick(NOW + 10**12)


@FUZZ
@given(st.text(max_size=60), st.binary(max_size=256))
def test_the_convention_on_arbitrary_topics_raises_only_decode_errors(topic: str, data: bytes):
    convention = SparkplugConvention()
    try:
        readings = convention.decode(Message(topic, data, {}, NOW))
    except DecodeError:
        return
    _carryable(readings)
