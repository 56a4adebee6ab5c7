"""InfluxDB stopped under load: every reading lands exactly once after it comes back."""

from __future__ import annotations

from tests.reliability.scenarios import influx_outage


def test_influxdb_down_under_load_loses_nothing_and_stores_each_reading_once(stack):
    result = influx_outage(stack, rate=500, before=1.5, outage=5.0, after=1.0, timeout=40)
    assert result.delivered == result.sent > 3000
    assert result.lost == 0, result.extra["missing_seqs"]
    assert result.stored == result.delivered
    assert result.extra["duplicate_points"] == 0
    assert result.peak_outbox > 1000  # the outage went to disk, and was reported
    assert result.extra["outbox_after"] == 0
    assert result.dropped == {}
