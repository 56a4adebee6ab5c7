"""Mosquitto restarted mid-stream: nothing the publisher got a PUBACK for is lost."""

from __future__ import annotations

from tests.reliability.scenarios import broker_restart


def test_broker_sigterm_and_restart_loses_no_acknowledged_reading(stack):
    result = broker_restart(stack, rate=500, before=1.5, down=2.0, after=1.0, timeout=40)
    assert result.sent > 2000
    assert result.delivered == result.sent  # the publisher resent what had no PUBACK
    assert result.lost == 0, result.extra["missing_seqs"]
    assert result.extra["duplicate_points"] == 0
    assert result.extra["reconnects"] >= 1  # the gateway noticed, and came back by itself
    assert result.dropped == {}
