"""Each server stores these names exactly; what the encoder refuses, and why (examples).

The property test (``test_escaping_roundtrip.py``) shows that whatever the encoder
writes comes back equal. These examples pin the cases down one by one: names with a
backslash before a special character that must be STORED, and for every refusal the
bytes a naive encoder sends and what the real server does with them — the point is
lost, renamed or cut, or the whole batch is refused.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from devices.model import Reading
from gateway.influx.lineproto import (
    INFLUXDB_1,
    INFLUXDB_2,
    UNSTORABLE_NAME,
    UNSTORABLE_VALUE,
    VICTORIAMETRICS,
    Dialect,
    LineEncoder,
    Unwritable,
)
from gateway.influx.sink import WriteError
from gateway.influx.v2 import InfluxV2Sink
from tests.influx.readback import (
    InfluxdContent,
    VmContent,
    write_and_read_influxd,
    write_and_read_vm,
)
from tests.services import InfluxDB, VictoriaMetrics

MS = 1_000_000
_clock = itertools.count(1_650_000_000_000, 1000)  # ms; each test its own second


def stamped(readings: list[Reading]) -> list[Reading]:
    base = next(_clock)
    return [
        Reading(r.device, r.metric, r.value, (base + i) * MS, tags=r.tags)
        for i, r in enumerate(readings)
    ]


def r(device: str = "d", metric: str = "m", value: Any = 1.5, **tags: str) -> Reading:
    return Reading(device=device, metric=metric, value=value, ts=0, tags=tags)


def refusal(dialect: Dialect, reading: Reading) -> Unwritable:
    with pytest.raises(Unwritable) as caught:
        LineEncoder(dialect).encode(reading)
    return caught.value


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture(scope="module")
def vm_sink(
    loop: asyncio.AbstractEventLoop, victoria_metrics: VictoriaMetrics
) -> Iterator[InfluxV2Sink]:
    sink = InfluxV2Sink(victoria_metrics.url, "token", "org", "bucket")
    loop.run_until_complete(sink.open())
    yield sink
    loop.run_until_complete(sink.close())


# --- stored exactly -------------------------------------------------------------------------

BACKSLASH_TAGS = [
    r("a\\ b"),
    r("a\\,b"),
    r("a\\=b"),
    r('a\\"b'),
    r("a\\\\b"),
    r("a\\\\ b"),
    r("a\\x"),
    r("\\ lead"),
    r("trail "),
    r('=,"'),
    r("gh-1", zone="x\\=y"),
    r("gh-1", **{"k\\ y": "v", "k\\=": "\\,"}),
    r("a\\ b", value='says "hi", x=1'),
    r("a\\,b", value=True),
]
PLAIN_SPECIAL_METRICS = [
    r(metric="m\\x"),
    r(metric='m"x'),
    r(metric="m=x"),
    r(metric=" m"),
    r(metric="m,x y"),
    r(metric="é 🙂"),
    r(metric="time"),
    r(metric="_m"),
]
BACKSLASH_METRICS = [
    r(metric="m\\ x"),
    r(metric="m\\,x"),
    r(metric="m\\=x"),
    r(metric='m\\"x'),
    r(metric="m\\"),
    r(metric="m\\\\"),
    r("ends\\", tail="x\\", **{"k\\": "v"}),
]


def assert_influxd_holds(got: InfluxdContent, readings: list[Reading]) -> None:
    assert got.error is None
    assert len(got.rows) == len(readings)
    field = {bool: "state", str: "text", float: "value"}
    for reading in readings:
        row = got.rows[reading.ts]
        assert row["measurement"] == reading.metric
        assert row["tags"] == {**reading.tags, "device": reading.device}
        assert row["fields"] == {field[type(reading.value)]: reading.value}
    tags = {(x.metric, k, v) for x in readings for k, v in {**x.tags, "device": x.device}.items()}
    assert got.tag_values == tags
    assert got.measurements == {x.metric for x in readings}


def test_influxd_stores_names_with_a_backslash_before_special_characters_in_one_batch(
    loop: asyncio.AbstractEventLoop, influxdb: InfluxDB
) -> None:
    readings = stamped(BACKSLASH_TAGS + PLAIN_SPECIAL_METRICS)
    encoder = LineEncoder(INFLUXDB_1)
    body = "\n".join(encoder.encode(x) for x in readings)
    assert_influxd_holds(write_and_read_influxd(loop, influxdb, body), readings)


def test_victoria_metrics_stores_any_backslash_in_any_name_in_one_batch(
    loop: asyncio.AbstractEventLoop, vm_sink: InfluxV2Sink, victoria_metrics: VictoriaMetrics
) -> None:
    readings = stamped(
        [x for x in BACKSLASH_TAGS if not isinstance(x.value, str)]
        + PLAIN_SPECIAL_METRICS
        + BACKSLASH_METRICS
    )
    encoder = LineEncoder(VICTORIAMETRICS)
    body = "\n".join(encoder.encode(x) for x in readings)
    first, last = readings[0].ts // MS, readings[-1].ts // MS
    got = write_and_read_vm(loop, vm_sink, victoria_metrics, body, first, last, len(readings))
    assert got.error is None
    assert got.points == {
        x.ts // MS: (
            f"{x.metric}_{'state' if isinstance(x.value, bool) else 'value'}",
            {**x.tags, "device": x.device},
            float(x.value),
        )
        for x in readings
    }


# --- refused: what the server would do with the bytes a naive encoder sends ------------------

T = 1_640_000_000_000_000_000  # the naive lines' time


def series_absent(got: InfluxdContent) -> bool:
    return got.error is None and not got.rows


InfluxCase = tuple[Reading, str, Callable[[InfluxdContent], bool]]
INFLUXD_REFUSES: dict[str, InfluxCase] = {
    # a measurement goes through two unescapings on its way to the index
    "backslash before space in a metric": (
        r(metric="m\\ x"),
        f"m\\\\ x,device=d value=1 {T}",
        series_absent,  # stored under a name SELECT cannot find
    ),
    "backslash before comma in a metric": (
        r(metric="m\\,x"),
        f"m\\\\,x,device=d value=1 {T}",
        lambda got: not got.rows and got.measurements == {"m,x"},
    ),
    "backslash before = in a metric": (
        r(metric="m\\=x"),
        f"m\\=x,device=d value=1 {T}",
        lambda got: [row["measurement"] for row in got.rows.values()] == ["m=x"],
    ),
    'backslash before " in a metric': (
        r(metric='m\\"x'),
        f'm\\"x,device=d value=1 {T}',
        lambda got: [row["measurement"] for row in got.rows.values()] == ['m"x'],
    ),
    "metric ending in a backslash": (
        r(metric="m\\"),
        f"m\\,device=d value=1 {T}",
        lambda got: [row["measurement"] for row in got.rows.values()] == ["m,device=d"],
    ),
    "device ending in a backslash": (
        r(device="d\\"),
        f"m,device=d\\ value=1 {T}",
        lambda got: got.error is not None and not got.rows,
    ),
    "metric starting with #": (
        r(metric="#m"),
        f"#m,device=d value=1 {T}",
        series_absent,  # a comment
    ),
    "metric starting with a tab": (
        r(metric="\tm"),
        f"\tm,device=d value=1 {T}",
        lambda got: [row["measurement"] for row in got.rows.values()] == ["m"],
    ),
    "tag key time": (
        r(time="x"),
        f"m,device=d,time=x value=1 {T}",
        lambda got: "invalid tag key" in (got.error or "") and not got.rows,
    ),
    "series key over 65535 bytes": (
        r(metric="m" * 65_530),
        f"{'m' * 65_530},device=d value=1 {T}",
        lambda got: got.error is not None and not got.rows,  # max key length exceeded
    ),
    # the splitter reads the next line into this one: both are refused
    "tag with a backslash before a space, then a text with =": (
        r(device="a\\ b\\,c", value="x=y"),
        f'm,device=a\\\\ b\\\\,c text="x=y" {T}\nn,device=q value=2 {T}',
        lambda got: "unable to parse" in (got.error or "") and not got.rows,
    ),
    "tag key with a backslash before a space, then a quote": (
        r(**{"k\\ y": 'v"w'}),
        f'm,device=d,k\\\\ y=v"w value=1 {T}\nn,device=q value=2 {T}',
        lambda got: "unable to parse" in (got.error or "") and not got.rows,
    ),
}


@pytest.mark.parametrize("case", INFLUXD_REFUSES, ids=str)
def test_what_influxd_cannot_store_is_refused(
    loop: asyncio.AbstractEventLoop, influxdb: InfluxDB, case: str
) -> None:
    reading, naive, lost = INFLUXD_REFUSES[case]
    assert refusal(INFLUXDB_1, reading).reason == UNSTORABLE_NAME
    assert refusal(INFLUXDB_2, reading).reason == UNSTORABLE_NAME
    assert lost(write_and_read_influxd(loop, influxdb, naive))


def test_influxd_drops_a_field_named_time_so_the_encoder_refuses_it(
    loop: asyncio.AbstractEventLoop, influxdb: InfluxDB
) -> None:
    with pytest.raises(Unwritable):
        LineEncoder(INFLUXDB_1).encode_point("m", {"device": "d"}, {"time": 1.0, "value": 2.0}, T)
    got = write_and_read_influxd(loop, influxdb, f"m,device=d time=1,value=2 {T}")
    assert [row["fields"] for row in got.rows.values()] == [{"value": 2}]


def test_a_series_key_just_under_the_limit_is_stored(
    loop: asyncio.AbstractEventLoop, influxdb: InfluxDB
) -> None:
    # "<metric>,device=d" + "#!~#" + "value" is exactly 65535 bytes
    [reading] = stamped([r(metric="m" * (65_535 - len(",device=d#!~#value")))])
    line = LineEncoder(INFLUXDB_1).encode(reading)
    assert_influxd_holds(write_and_read_influxd(loop, influxdb, line), [reading])
    longer = Reading("d", reading.metric + "m", 1.5, reading.ts)
    assert refusal(INFLUXDB_1, longer).reason == UNSTORABLE_NAME


VmCase = tuple[Reading, str, Callable[[VmContent, int], bool]]


def labels_of(got: VmContent, ms: int) -> dict[str, str]:
    return got.points[ms][1]


VM_REFUSES: dict[str, VmCase] = {
    "text value": (
        r(value="on"),
        'm,device=d text="on"',
        lambda got, ms: got.points[ms] == ("m_text", {"device": "d"}, 0),
    ),
    "tag key __name__": (
        r(__name__="x"),
        "m,device=d,__name__=x value=1",
        lambda got, ms: got.points[ms] == ("m_value", {"device": "d"}, 1),  # the tag is gone
    ),
    "tag key over 256 bytes": (
        r(**{"k" * 257: "v"}),
        f"m,device=d,{'k' * 257}=v value=1",
        lambda got, ms: labels_of(got, ms) == {"device": "d", "k" * 256: "v"},
    ),
    "tag value over 16 KiB": (
        r(device="d" * 16_385),
        f"m,device={'d' * 16_385} value=1",
        lambda got, ms: labels_of(got, ms) == {"device": "d" * 16_384},
    ),
    "metric name over 16 KiB": (
        r(metric="m" * 16_380),
        f"{'m' * 16_380},device=d value=1",
        lambda got, ms: len(got.points[ms][0]) == 16_384,
    ),
    "30 tags besides the device": (
        r(**{f"t{i:02}": "v" for i in range(30)}),
        "m,device=d," + ",".join(f"t{i:02}=v" for i in range(30)) + " value=1",
        lambda got, ms: len(labels_of(got, ms)) == 30,  # one of the 31 is dropped
    ),
    "a number closer to zero than 1e-290": (
        r(value=2.897095866722965e-306),
        "m,device=d value=2.897095866722965e-306",
        lambda got, ms: got.points[ms][2] == 0,
    ),
    "metric starting with #": (
        r(metric="#m"),
        "#m,device=d value=1\nn,device=d value=1",
        lambda got, ms: got.points == {ms: ("n_value", {"device": "d"}, 1)},  # a comment
    ),
}


@pytest.mark.parametrize("case", VM_REFUSES, ids=str)
def test_what_victoria_metrics_cannot_store_is_refused(
    loop: asyncio.AbstractEventLoop,
    vm_sink: InfluxV2Sink,
    victoria_metrics: VictoriaMetrics,
    case: str,
) -> None:
    reading, naive, lost = VM_REFUSES[case]
    assert refusal(VICTORIAMETRICS, reading).reason in (UNSTORABLE_NAME, UNSTORABLE_VALUE)
    ms = next(_clock)
    body = "\n".join(f"{line} {ms * MS}" for line in naive.split("\n"))
    assert lost(write_and_read_vm(loop, vm_sink, victoria_metrics, body, ms, ms), ms)


def test_victoria_metrics_stores_names_at_its_limits_exactly(
    loop: asyncio.AbstractEventLoop, vm_sink: InfluxV2Sink, victoria_metrics: VictoriaMetrics
) -> None:
    readings = stamped(
        [
            r(**{"k" * 256: "v"}),
            r(device="é" * 8_192),  # 16384 bytes
            r(metric="m" * (16_384 - len("_value"))),
            r(**{f"t{i:02}": "v" for i in range(28)}),
            r(value=1e-290),
        ]
    )
    encoder = LineEncoder(VICTORIAMETRICS)
    body = "\n".join(encoder.encode(x) for x in readings)
    first, last = readings[0].ts // MS, readings[-1].ts // MS
    got = write_and_read_vm(loop, vm_sink, victoria_metrics, body, first, last, len(readings))
    assert len(got.points) == len(readings)
    for x in readings:
        metric, labels, value = got.points[x.ts // MS]
        assert (metric, labels) == (f"{x.metric}_value", {**x.tags, "device": x.device})
        assert math.isclose(value, x.value, rel_tol=1e-11)  # its ~12 significant digits


# --- the sinks ----------------------------------------------------------------------------------


def test_a_body_that_is_not_utf8_is_a_bad_point_for_both_sinks(
    loop: asyncio.AbstractEventLoop, influxdb: InfluxDB, vm_sink: InfluxV2Sink
) -> None:
    """Lines from an older version's outbox may hold a lone surrogate: the writer must be
    able to isolate and dead-letter them (a bad point), not crash on them."""
    got = write_and_read_influxd(loop, influxdb, f"m,device=d\ud800 value=1 {T}")
    assert got.error is not None and "not UTF-8" in got.error
    with pytest.raises(WriteError) as caught:
        loop.run_until_complete(vm_sink.write(f"m,device=d\ud800 value=1 {T}"))
    assert caught.value.kind == "bad_points" and caught.value.splittable


# --- without a server: the rules ------------------------------------------------------------


@pytest.mark.parametrize(
    ("reading", "dialects"),
    [
        (r(device=""), "1 2 vm"),
        (r(metric=""), "1 2 vm"),
        (r(**{"": "v"}), "1 2 vm"),
        (r(device="a\x00b"), "1 2 vm"),
        (r(device="a\x7fb"), "1 2 vm"),
        (r(metric="m\nx"), "1 2 vm"),
        (r(device="a\ud800"), "1 2 vm"),
        (r(zone="\udfff"), "1 2 vm"),
        (r(metric="_m"), "2"),
        (r(_field="x"), "2"),
        (r(_measurement="x"), "2"),
        (r(_start="x"), "2"),
        (r(time="x"), "1 2"),
    ],
)
def test_names_refused_by_dialect(reading: Reading, dialects: str) -> None:
    by_name: dict[str, Dialect] = {"1": INFLUXDB_1, "2": INFLUXDB_2, "vm": VICTORIAMETRICS}
    for key, dialect in by_name.items():
        if key in dialects.split():
            assert refusal(dialect, reading).reason == UNSTORABLE_NAME
        else:
            LineEncoder(dialect).encode(reading)


@pytest.mark.parametrize(
    "value", [float("nan"), float("inf"), float("-inf"), "a\nb", "a\rb", "a\ud800b"]
)
def test_values_refused_everywhere(value: Any) -> None:
    for dialect in (INFLUXDB_1, INFLUXDB_2, VICTORIAMETRICS):
        assert refusal(dialect, r(value=value)).reason == UNSTORABLE_VALUE


def test_a_tag_value_may_start_with_an_underscore_in_influxdb_2() -> None:
    assert LineEncoder(INFLUXDB_2).encode(Reading("_d", "m", 1.0, 5, tags={"zone": "_z"})) == (
        "m,device=_d,zone=_z value=1.0 5"
    )


def test_a_refusal_is_not_cached_and_a_series_is() -> None:
    encoder = LineEncoder(INFLUXDB_1)
    bad = Reading("d", "m\\ x", 1.0, 5)
    for _ in range(2):
        with pytest.raises(Unwritable):
            encoder.encode(bad)
    good = Reading("gh 1", "temp", 21.5, 5, tags={"zone": "n,1"})
    line = r"temp,device=gh\ 1,zone=n\,1 value=21.5 5"
    assert encoder.encode(good) == encoder.encode(good) == line


def test_points_that_are_not_readings_have_plain_field_names_and_may_lose_text() -> None:
    encoder = LineEncoder(INFLUXDB_1)
    line = encoder.encode_point(
        "outpost_alerts", {"rule": "hot, very", "state": ""}, {"message": 'a "b"', "value": 2}, 7
    )
    assert line == r'outpost_alerts,rule=hot\,\ very message="a \"b\"",value=2.0 7'
    for fields in ({"a b": 1.0}, {"": 1.0}, {}):
        with pytest.raises(Unwritable):
            encoder.encode_point("m", {}, fields, 7)  # type: ignore[arg-type]
    # VictoriaMetrics stores numbers only: an alert keeps its value, not its message
    vm = LineEncoder(VICTORIAMETRICS)
    assert vm.encode_point("m", {}, {"message": "x", "value": 1.0}, 7) == "m value=1.0 7"
    with pytest.raises(Unwritable) as caught:
        vm.encode_point("outpost_commands", {}, {"id": "c1", "settings": "{}"}, 7)
    assert caught.value.reason == UNSTORABLE_VALUE
