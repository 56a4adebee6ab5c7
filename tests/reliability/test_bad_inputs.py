"""Garbage and huge payloads at rate: the gateway stays up, in bounded memory, counts every
bad input by reason, and stores every valid reading sent in between."""

from __future__ import annotations

from pathlib import Path

from tests.reliability.rig import Stack
from tests.reliability.scenarios import BIG_PACKETS, bad_inputs


def test_bad_inputs_are_each_dead_lettered_while_valid_readings_all_land(tmp_path: Path):
    with Stack(tmp_path, broker_config=BIG_PACKETS) as stack:
        result = bad_inputs(stack, duration=5.0, bad_rate=1000, big_rate=10, timeout=60)
    print(result.extra, result.notes)
    assert result.extra["alive"]
    assert result.dropped == result.extra["expected_letters"]  # each one, by reason
    assert result.lost == 0, result.extra["missing_seqs"]
    assert result.extra["rss_growth_mib"] < 50
    assert result.extra["dollar_points"] >= 1
