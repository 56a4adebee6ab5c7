"""One point InfluxDB refuses inside a batch of 1,000: 999 written, 1 dead-lettered."""

from __future__ import annotations

import pytest

from tests.reliability.scenarios import bad_point_in_batch


@pytest.mark.parametrize("how", ["conflict", "partial"])
def test_one_bad_point_in_a_batch_of_1000_is_dead_lettered_alone(stack, how):
    result = bad_point_in_batch(stack, size=1000, how=how)
    first_lines, first_status = result.extra["requests"][0]
    assert (first_lines, first_status) == (1000, 400)  # one batch, refused whole
    assert result.stored == 999
    assert result.dropped == {"influx_rejected": 1}
    assert len(result.extra["requests"]) <= 2 * 10 + 2  # halving: about 2 log2(1000)
