"""InfluxDB's error answers, injected by the FaultProxy in front of the real influxd,
against the real gateway (issue 6, item 3): 413 splits, 429/503 wait ``Retry-After``,
401/403 keep the data and say why, dropped connections back off with jitter."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time

import pytest

from tests.reliability.rig import SeqPublisher, wait_until


def writes(stack):
    return stack.proxy.requests("/write")


def test_413_splits_the_batch_and_every_reading_lands(stack):
    stack.proxy.set_fault(status=413, count=1, path="/write")
    stack.start_gateway(influx={"batch_size": 200, "flush_interval": "30s"})
    pub = SeqPublisher(stack.broker.port, device="split", rate=0)
    stack.publishers.append(pub)
    for _ in range(200):
        pub.publish_one()
    wait_until(lambda: stack.stored_count("split") == 200, 15, "200 readings stored")
    answered = [(r["lines"], r["status"]) for r in writes(stack)]
    assert answered[:3] == [(200, 413), (100, 204), (100, 204)]


@pytest.mark.parametrize("status", [429, 503])
def test_throttled_write_waits_for_retry_after_before_the_next_request(stack, status):
    stack.start_gateway()
    pub = stack.publisher(device="throttled", rate=200).start()
    time.sleep(1.0)
    stack.proxy.set_fault(status=status, retry_after=3, count=1, path="/write")
    wait_until(lambda: any(r["status"] == status for r in writes(stack)), 10, "the throttle")
    time.sleep(4.0)
    log = writes(stack)
    at = next(i for i, r in enumerate(log) if r["status"] == status)
    gap = log[at + 1]["time"] - log[at]["time"]
    assert 3.0 <= gap < 5.0, f"next write {gap:.2f} s after a {status} with Retry-After: 3"
    result_lost = set(range(pub.sent)) - set(stack.stored_values("throttled"))
    pub.stop()
    wait_until(lambda: stack.stored_count("throttled") >= len(pub.delivered()), 20, "stored")
    assert not result_lost - set(range(pub.sent)) - pub.delivered()


@pytest.mark.parametrize("status", [401, 403])
def test_refused_credentials_keep_the_data_and_say_so(stack, status):
    stack.proxy.set_fault(status=status, count=None, path="/write")
    stack.start_gateway()
    pub = stack.publisher(device="auth", rate=200).start()
    time.sleep(2.0)
    pub.stop()
    pub.wait_delivered(10)
    delivered = pub.delivered()
    assert len(delivered) == pub.sent  # acknowledged: safe on disk, not lost
    wait_until(lambda: stack.metrics().get("outpost_outbox_readings", 0) >= len(delivered), 10,
               "readings kept in the outbox")
    log = stack.gateway.log()
    assert f"InfluxDB answered {status}" in log and "credentials" in log
    stack.proxy.clear()  # the operator fixes the token
    wait_until(lambda: stack.stored_count("auth") == len(delivered), 40, "backfilled")
    # …and an alert said so, then resolved (it is in the journal, as on MQTT).
    events = subprocess.run(
        [sys.executable, "-m", "gateway", "events", "--json", "-c", str(stack.config_path)],
        capture_output=True, text=True, check=True).stdout
    alerts = [json.loads(line)["event"] for line in events.splitlines()
              if json.loads(line)["rule"] == "influx_unauthorized"]
    assert [(a["state"], a["value"]) for a in alerts] == [("firing", status), ("resolved", None)]
    assert "refuses the gateway's credentials" in alerts[0]["message"]


def test_dropped_connections_back_off_exponentially_with_jitter(stack):
    stack.start_gateway()
    pub = stack.publisher(device="drops", rate=100).start()
    time.sleep(1.0)
    stack.proxy.clear_requests()
    stack.proxy.set_fault(drop="before", count=None)
    time.sleep(9.0)
    times = [r["time"] for r in writes(stack)]
    stack.proxy.clear()
    # The first failure is the live batch's (it goes to the outbox); the retries are the
    # backfill's, whose first one also waits for its idle poll (up to 1 s): skip that gap.
    gaps = [b - a for a, b in itertools.pairwise(times[1:])]
    # Capped exponential backoff with full jitter: the k-th wait is drawn from
    # [c/2, c] with c = 0.5 s * 2^k, so each wait is at least the previous one, one two
    # steps later at least twice as long, and the ratios vary. A fixed retry period (or
    # a retry storm) fails this.
    assert 2 <= len(gaps) <= 7, gaps
    assert all(b > a for a, b in itertools.pairwise(gaps)), gaps
    assert all(c >= 1.8 * a for a, c in zip(gaps, gaps[2:], strict=False)), gaps
    assert len({round(b / a, 2) for a, b in itertools.pairwise(gaps)}) > 1, gaps
    pub.stop()
    pub.wait_delivered(10)
    n = len(pub.delivered())
    wait_until(lambda: stack.stored_count("drops") >= n, 40, "stored after the drops")
    assert set(stack.stored_values("drops")) >= pub.delivered()
