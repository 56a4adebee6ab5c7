"""The gateway kill -9-ed at random moments under load: no delivered reading goes missing."""

from __future__ import annotations

from tests.reliability.scenarios import gateway_kills


def test_gateway_killed_repeatedly_under_load_loses_no_delivered_reading(stack):
    result = gateway_kills(stack, kills=4, rate=500, up=(0.3, 2.0), timeout=40)
    assert result.sent > 2000
    assert result.lost == 0, result.extra["missing_seqs"]
    # Redelivered readings are rewritten with their own timestamps: still one point each.
    assert result.extra["duplicate_points"] == 0
    assert result.stored == result.delivered
