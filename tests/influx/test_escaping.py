"""Names and tags survive line protocol and a real influxd unchanged (DESIGN.md §5).

Spaces, commas, ``=``, quotes, backslashes, non-ASCII letters and emoji must
round-trip. What line protocol cannot carry is refused up front, never
mangled: empty strings, newlines and control characters, a name or tag
ending in a backslash (it would escape the separator after it), and a
measurement starting with ``#`` (a comment line).
"""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devices.model import Reading
from gateway.influx.lineproto import LineEncoder, Unwritable
from gateway.influx.v1 import InfluxV1Sink

TRICKY = " ,=\"'\\#/+äéß€日本🙂🌡️"
text = st.text(
    st.one_of(
        st.sampled_from(TRICKY),
        st.characters(min_codepoint=0x21, max_codepoint=0x7E),
        st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")),
    ),
    min_size=1,
    max_size=16,
).filter(lambda s: not s.endswith("\\"))


def write(influxdb, db: str, lines: list[str]) -> None:
    async def go() -> None:
        sink = InfluxV1Sink(influxdb.url, db)
        await sink.open()
        try:
            await sink.write("\n".join(lines))
        finally:
            await sink.close()

    asyncio.run(go())


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    device=text,
    metric=text.filter(lambda s: not s.startswith("#")),
    tag=text,
    value=st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.booleans(), text),
)
def test_device_metric_and_tag_round_trip_through_influxd(influxdb, device, metric, tag, value):
    db = "escaping"
    influxdb.query(f'DROP DATABASE "{db}"')
    reading = Reading(
        device=device, metric=metric, value=value, ts=1_700_000_000_123_456_789, tags={"zone": tag}
    )
    write(influxdb, db, [LineEncoder().encode(reading)])
    [row] = influxdb.points(db)
    assert row["measurement"] == metric
    assert row["tags"] == {"device": device, "zone": tag}
    assert row["time"] == reading.ts
    [(field, stored)] = row["fields"].items()
    assert field == {bool: "state", str: "text", float: "value"}[type(value)]
    if isinstance(value, float):
        # /query's JSON prints whole floats without a decimal point (21.0 as 21)
        assert float(stored) == value
    else:
        assert stored == value


@pytest.mark.parametrize(
    ("device", "metric", "tags"),
    [
        ("ends\\", "m", {}),
        ("d", "m\\", {}),
        ("d", "m", {"zone": "x\\"}),
        ("d", "#m", {}),
        ("", "m", {}),
        ("d", "m", {"zone": "a\nb"}),
    ],
)
def test_what_line_protocol_cannot_carry_is_refused_not_mangled(device, metric, tags):
    with pytest.raises(Unwritable):
        LineEncoder().encode(Reading(device=device, metric=metric, value=1.0, ts=1, tags=tags))
