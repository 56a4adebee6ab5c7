"""Writing line protocol to the real servers and reading every point back, for the escaping tests.

influxd: a body goes through the gateway's own 1.x sink into a database of its own;
``SELECT * … GROUP BY *``, ``SHOW MEASUREMENTS`` and ``SHOW TAG VALUES`` read it back.
VictoriaMetrics: through the 2.x sink; ``/api/v1/export`` over a millisecond range reads
it back as ``{ms: (metric, labels, value)}``.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from typing import Any

from gateway.influx.v1 import InfluxV1Sink
from gateway.influx.v2 import InfluxV2Sink
from tests.services import InfluxDB, VictoriaMetrics, http_request


@dataclass
class InfluxdContent:
    rows: dict[int, dict[str, Any]]  # by time (ns): measurement, tags, fields
    measurements: set[str]
    tag_values: set[tuple[str, str, str]]  # (measurement, key, value)
    error: str | None = None  # what the write raised, if it did


def write_and_read_influxd(
    loop: asyncio.AbstractEventLoop, influxdb: InfluxDB, body: str
) -> InfluxdContent:
    """Write ``body`` in one request to a new database, read it all back, drop the database."""
    db = f"escaping_{uuid.uuid4().hex[:10]}"
    influxdb.create_database(db)
    sink = InfluxV1Sink(influxdb.url, db)
    error = None
    try:
        loop.run_until_complete(sink.open())
        try:
            if body:
                loop.run_until_complete(sink.write(body))
        except Exception as exc:  # a refused batch is what some tests show
            error = str(exc)
        finally:
            loop.run_until_complete(sink.close())
        rows = {row["time"]: row for row in influxdb.points(db)}
        answer = influxdb.query("SHOW TAG VALUES WITH KEY =~ /.*/", db)
        tag_values = {
            (series["name"], key, value)
            for series in answer["results"][0].get("series", [])
            for key, value in series["values"]
        }
        return InfluxdContent(rows, set(influxdb.measurements(db)), tag_values, error)
    finally:
        influxdb.drop_database(db)


@dataclass
class VmContent:
    points: dict[int, tuple[str, dict[str, str], float]] = field(default_factory=dict)
    error: str | None = None


def write_and_read_vm(
    loop: asyncio.AbstractEventLoop,
    sink: InfluxV2Sink,
    vm: VictoriaMetrics,
    body: str,
    first_ms: int,
    last_ms: int,
    expect: int = 1,
) -> VmContent:
    """Write ``body`` through ``sink``; every sample between the two times, by millisecond.

    A new series can take a moment to become searchable after a flush: the export is
    repeated for up to 3 s until it holds ``expect`` samples.
    """
    content = VmContent()
    try:
        if body:
            loop.run_until_complete(sink.write(body))
    except Exception as exc:
        content.error = str(exc)
    deadline = time.monotonic() + 3
    while True:
        content.points = _export(vm, first_ms, last_ms)
        if len(content.points) >= expect or time.monotonic() > deadline:
            return content
        time.sleep(0.05)


def _export(vm: VictoriaMetrics, first_ms: int, last_ms: int) -> dict[int, Any]:
    vm.flush()
    params = urllib.parse.urlencode(
        {"match[]": '{__name__=~".*"}', "start": first_ms / 1000, "end": last_ms / 1000}
    )
    status, _, answer = http_request("GET", f"{vm.url}/api/v1/export?{params}")
    assert status == 200, answer[:300]
    points: dict[int, Any] = {}
    for line in answer.splitlines():
        if not line.strip():
            continue
        series = json.loads(line)
        labels = dict(series["metric"])
        metric = labels.pop("__name__", "")
        for value, ms in zip(series["values"], series["timestamps"], strict=True):
            assert ms not in points, f"two samples at {ms}: {metric} {labels}"
            points[ms] = (metric, labels, value)
    return points
