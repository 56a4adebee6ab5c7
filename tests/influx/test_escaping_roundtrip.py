"""Arbitrary names and values, encoded in batches, written to the real server, read back equal.

Each example is one batch of readings whose device, metric, tag keys, tag values
and text values are arbitrary text, heavy on what line protocol treats
specially (space, ``,``, ``=``, ``"``, backslash, ``#``, ``_``), with control
characters, lone surrogates, non-finite numbers and empty names mixed in. The
encoder of the server's dialect either encodes a reading or refuses it with
``unstorable_name``/``unstorable_value``; the encoded lines are written as ONE
body through the gateway's own sink, so a line that breaks its neighbours
fails the write. Then every stored point is read back:

- influxd 1.6 (``SELECT * … GROUP BY *``, ``SHOW MEASUREMENTS``, ``SHOW TAG
  VALUES``): measurement, tags, field name and value, nanosecond time;
- VictoriaMetrics through ``/api/v2/write`` (``/api/v1/export``): the metric
  ``<measurement>_<field>``, the labels, the value (booleans as 1 and 0; VictoriaMetrics
  keeps about 12 significant digits of a number), the millisecond time.

A refusal must be explained by a documented rule (:func:`explains`): a reading
whose names and value break none is always stored. InfluxDB 2.x is not run
here; its dialect must write exactly the 1.x bytes or refuse (it adds reserved
names only), and those bytes are written to influxd, whose parser 2.x shares.

``OUTPOST_FUZZ_EXAMPLES=2000`` runs a long fuzz instead of the quick default.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import os
import re
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devices.model import Reading
from gateway.influx.lineproto import (
    INFLUXDB_1,
    INFLUXDB_2,
    SMALLEST_NUMBER,
    UNSTORABLE_NAME,
    UNSTORABLE_VALUE,
    VICTORIAMETRICS,
    Dialect,
    LineEncoder,
    Unwritable,
)
from gateway.influx.v2 import InfluxV2Sink
from tests.influx.readback import write_and_read_influxd, write_and_read_vm
from tests.services import InfluxDB, VictoriaMetrics

EXAMPLES = int(os.environ.get("OUTPOST_FUZZ_EXAMPLES", "30"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
pytestmark = pytest.mark.timeout(max(120, EXAMPLES))  # a long fuzz run takes its time

SPECIAL = ' ,="\\#_'
RARE = "\x00\t\n\r\x7f\ud800\udfff'/+äé€日🙂\u2028\uffff"
char = st.one_of(
    st.sampled_from(SPECIAL),
    st.sampled_from(SPECIAL),
    st.sampled_from("abz09-."),
    st.sampled_from(RARE),
    st.characters(codec="utf-8"),
)
name = st.one_of(
    st.text(char, max_size=8),
    st.sampled_from(["time", "_field", "_value", "__name__", "db", "device", "value", "#m"]),
)
value = st.one_of(
    st.floats(),
    st.booleans(),
    st.text(char, max_size=12),
)
reading = st.builds(
    lambda device, metric, v, tags: Reading(device=device, metric=metric, value=v, ts=0, tags=tags),
    name,
    name,
    value,
    st.dictionaries(name, name, max_size=3),
)
batch = st.lists(reading, min_size=1, max_size=25)

_examples = itertools.count()
MS = 1_000_000


def stamp(readings: list[Reading]) -> list[Reading]:
    """Give each reading its own millisecond (VictoriaMetrics keeps ms) and sub-ms ns."""
    base = 1_700_000_000_000 + next(_examples) * 100_000
    return [
        Reading(r.device, r.metric, r.value, (base + i) * MS + 789, tags=r.tags)
        for i, r in enumerate(readings)
    ]


# --- what the documented rules allow to be refused ------------------------------------------

_BAD_CHAR = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")


def names_of(r: Reading) -> list[str]:
    return [r.device, r.metric, *r.tags, *(v for v in r.tags.values() if v)]


def explains(r: Reading, dialect: Dialect, exc: Unwritable) -> bool:
    """Whether a documented rule lets ``dialect`` refuse ``r`` (README "What lands in InfluxDB")."""
    if exc.reason == UNSTORABLE_VALUE:
        if isinstance(r.value, str):
            return dialect is VICTORIAMETRICS or bool(re.search(r"[\n\r\ud800-\udfff]", r.value))
        assert isinstance(r.value, float)
        if dialect is VICTORIAMETRICS and r.value and abs(r.value) < SMALLEST_NUMBER:
            return True
        return r.value - r.value != 0  # inf or nan
    assert exc.reason == UNSTORABLE_NAME, exc.reason
    names = names_of(r)
    if not r.device or not r.metric or r.metric.startswith("#") or "" in r.tags:
        return True
    if any(_BAD_CHAR.search(n) for n in names):
        return True
    if dialect is VICTORIAMETRICS:
        return "__name__" in r.tags
    if any("\\" in n for n in names):  # the backslash rules of InfluxDB
        return True
    if "time" in r.tags:
        return True
    return dialect is INFLUXDB_2 and any(n.startswith("_") for n in [r.metric, *r.tags])


def encode_batch(dialect: Dialect, readings: list[Reading]) -> list[tuple[Reading, str]]:
    encoder = LineEncoder(dialect)
    stored = []
    for r in readings:
        try:
            stored.append((r, encoder.encode(r)))
        except Unwritable as exc:
            assert explains(r, dialect, exc), f"refused without a documented rule: {r!r}: {exc}"
    return stored


def expected_tags(r: Reading) -> dict[str, str]:
    return {k: v for k, v in {**r.tags, "device": r.device}.items() if v != ""}


def field_of(r: Reading) -> str:
    return {bool: "state", str: "text", float: "value"}[type(r.value)]


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """One event loop for the sinks of every example (``asyncio.run`` per example is slow)."""
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


# --- influxd 1.6 ----------------------------------------------------------------------------


def check_influxd(
    loop: asyncio.AbstractEventLoop, influxdb: InfluxDB, stored: list[tuple[Reading, str]]
) -> None:
    got = write_and_read_influxd(loop, influxdb, "\n".join(line for _, line in stored))
    assert got.error is None
    assert len(got.rows) == len(stored)
    for r, line in stored:
        row = got.rows.get(r.ts)
        assert row is not None, f"not stored: {line!r}"
        assert row["measurement"] == r.metric, line
        assert row["tags"] == expected_tags(r), line
        [(field, value)] = row["fields"].items()
        assert field == field_of(r), line
        # /query's JSON writes whole floats without a point (21.0 as 21)
        assert (float(value) if isinstance(r.value, float) else value) == r.value, line
    assert got.measurements == {r.metric for r, _ in stored}
    assert got.tag_values == {
        (r.metric, k, v) for r, _ in stored for k, v in expected_tags(r).items()
    }


@FUZZ
@given(readings=batch)
def test_influxd_stores_every_name_and_value_it_is_given_or_the_encoder_refuses(
    loop: asyncio.AbstractEventLoop, influxdb: InfluxDB, readings: list[Reading]
) -> None:
    readings = stamp(readings)
    check_influxd(loop, influxdb, encode_batch(INFLUXDB_1, readings))


@FUZZ
@given(readings=batch)
def test_the_influxdb_2_dialect_writes_the_1x_bytes_or_refuses(
    loop: asyncio.AbstractEventLoop, influxdb: InfluxDB, readings: list[Reading]
) -> None:
    readings = stamp(readings)
    stored = encode_batch(INFLUXDB_2, readings)
    v1 = LineEncoder(INFLUXDB_1)
    assert all(v1.encode(r) == line for r, line in stored)
    check_influxd(loop, influxdb, stored)


# --- VictoriaMetrics --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vm_sink(
    loop: asyncio.AbstractEventLoop, victoria_metrics: VictoriaMetrics
) -> Iterator[InfluxV2Sink]:
    sink = InfluxV2Sink(victoria_metrics.url, "token", "org", "bucket")
    loop.run_until_complete(sink.open())
    yield sink
    loop.run_until_complete(sink.close())


@FUZZ
@given(readings=batch)
def test_victoria_metrics_stores_every_name_and_value_it_is_given_or_the_encoder_refuses(
    loop: asyncio.AbstractEventLoop,
    vm_sink: InfluxV2Sink,
    victoria_metrics: VictoriaMetrics,
    readings: list[Reading],
) -> None:
    # One series per reading: VictoriaMetrics compresses the values of a series together,
    # and values of one series far apart in magnitude lose digits there.
    readings = [
        Reading(r.device, r.metric, r.value, r.ts, tags={**r.tags, "sample": str(r.ts)})
        for r in stamp(readings)
    ]
    stored = encode_batch(VICTORIAMETRICS, readings)
    got = write_and_read_vm(
        loop,
        vm_sink,
        victoria_metrics,
        "\n".join(line for _, line in stored),
        readings[0].ts // MS,
        readings[-1].ts // MS,
        expect=len(stored),
    )
    assert got.error is None
    assert len(got.points) == len(stored)
    for r, line in stored:
        point = got.points.get(r.ts // MS)
        assert point is not None, f"not stored: {line!r}"
        metric, labels, number = point
        assert (metric, labels) == (f"{r.metric}_{field_of(r)}", expected_tags(r)), line
        # VictoriaMetrics keeps a number as a decimal of about 12 significant digits
        assert math.isclose(number, float(r.value), rel_tol=1e-11), line
