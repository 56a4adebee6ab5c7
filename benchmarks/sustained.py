"""Long runs: the gateway held at a fraction of its maximum, and what it writes to disk."""

from __future__ import annotations

import threading
import time
from typing import Any

from benchmarks import latency
from benchmarks.procstat import Watch, write_bytes
from benchmarks.report import Row
from benchmarks.rig import Gateway, Rig

DISK_DEVICES = 100  # at one reading/s each
# The paced maximum: a rate is carried when, for one probe (15 s, or --window if shorter),
# the publisher held it, nothing was lost or missing and the alert p99 stayed under
# KEPT_UP_P99_MS.
PROBE_STEPS = 4
KEPT_UP_P99_MS = 1000.0
DISK_WARMUP = 5.0  # s before the window opens: start-up writes are not the steady state


def sustained(
    rig: Rig, id: str, name: str, rate: float, seconds: float, window: float, *, vs: str
) -> Row:
    """``rate`` readings/s offered for ``seconds``. Besides the whole run's figures, the
    row's ``figures["windows"]`` holds the first and the last ``window`` seconds: the
    gateway's highest VmRSS sample and the latencies of the hot readings sent in each."""
    result = latency.run(rig, id.lower(), rate, seconds)
    start, end = result.sent["start"], result.sent["end"]
    windows = []
    for which, lo in (("first", start), ("last", max(start, end - window))):
        hi = min(end, lo + window)
        rss = [kib for t, kib in result.rss if lo <= t <= hi] or [0]
        figures = result.samples.between(lo, hi).figures()
        windows.append({"window": which, "rss_mib": max(rss) / 1024, **figures})
    row = latency.as_row(result, id, name, vs=vs)
    row.figures["windows"] = windows
    return row


def carried(row: Row, offered: float) -> bool:
    """Did the gateway keep up with ``offered`` readings/s in this latency row?"""
    f = row.figures
    return (
        row.lost == 0
        and f["alert_missing"] == 0
        and f["command_missing"] == 0
        and f["alert_p99_ms"] < KEPT_UP_P99_MS
        and row.rate >= 0.95 * offered
    )


def paced_maximum(
    rig: Rig, id: str, low: float, high: float, seconds: float, *, vs: str
) -> Row:
    """The highest rate between ``low`` and ``high`` the whole rig carries while paced.

    A burst row (G1) lets the publisher finish before the gateway has drained the
    broker's queue, so its rate is not one the gateway can be *held* at: the publisher,
    broker, gateway and InfluxDB share the machine. This bisects for PROBE_STEPS runs of
    ``seconds`` each; the row is the last run carried (``low`` is tried first, and
    reported as not carried if even it fails)."""
    best = latency.as_row(latency.run(rig, f"{id.lower()}-low", low, seconds), id,
                          "", vs=vs)
    kept, tried = (low if carried(best, low) else 0.0), [f"{low:,.0f} {_mark(best, low)}"]
    if kept:
        lo, hi = low, high
        for step in range(PROBE_STEPS):
            rate = (lo + hi) / 2
            probe = latency.as_row(
                latency.run(rig, f"{id.lower()}-{step}", rate, seconds), id, "", vs=vs)
            tried.append(f"{rate:,.0f} {_mark(probe, rate)}")
            if carried(probe, rate):
                lo, best, kept = rate, probe, rate
            else:
                hi = rate
    best.name = "gateway, paced maximum, 1 rule + command"
    best.figures["paced_maximum"] = kept
    best.notes = (f"carried {kept:,.0f}/s (tried: {', '.join(tried)}; "
                  f"{seconds:g} s each); " + best.notes)
    return best


def _mark(row: Row, offered: float) -> str:
    return "yes" if carried(row, offered) else "no"


def window_table(row: Row) -> str:
    lines = [
        "| window | gateway VmRSS MiB (highest) | alert p50 / p99 ms "
        "| command p50 / p99 ms | hot readings | missing alerts / commands |",
        "|---|---|---|---|---|---|",
    ]
    for w in row.figures["windows"]:
        lines.append(
            f"| {w['window']} | {w['rss_mib']:.0f} | {w['alert_p50_ms']:.1f} / "
            f"{w['alert_p99_ms']:.1f} | {w['command_p50_ms']:.1f} / {w['command_p99_ms']:.1f} "
            f"| {w['hot_readings']:.0f} | {w['alert_missing']:.0f} / {w['command_missing']:.0f} |"
        )
    return "\n".join(lines)


FLAT = 1.10  # the last window may be at most 10 % above the first


def verdict(row: Row) -> str:
    """Whether RSS and both p99 latencies stayed flat from the first window to the last."""
    first, last = row.figures["windows"]
    grew = [
        f"{label} {last[key] / first[key]:.2f}×"
        for label, key in (("RSS", "rss_mib"), ("alert p99", "alert_p99_ms"),
                           ("command p99", "command_p99_ms"))
        if last[key] > FLAT * first[key]
    ]
    lost = f"{row.lost:,} lost"
    if grew:
        return f"\nS1 NOT flat (last window / first): {', '.join(grew)}; {lost}."
    return f"\nS1 flat: RSS and p99 latencies of the last window within 10 % of the first; {lost}."


def disk(rig: Rig, id: str, window: float, *, vs: str) -> Row:
    """100 devices at one reading/s (QoS 1, the inputs' default) for DISK_WARMUP + window
    seconds; the gateway's ``write_bytes`` over the window, as KiB per minute."""
    inputs = [{"topic": "bench/{device}/{metric}", "format": "value", "qos": 1}]
    count = round(DISK_DEVICES * (DISK_WARMUP + window))
    with Gateway(rig, id.lower(), inputs).start() as gateway:
        watch = Watch(gateway.pid).start()
        report: dict[str, dict[str, Any]] = {}
        publisher = threading.Thread(
            target=lambda: report.update(sent=rig.publish(count, qos=1, rate=DISK_DEVICES))
        )
        publisher.start()
        time.sleep(DISK_WARMUP)
        before, t0 = write_bytes(gateway.pid), time.monotonic()
        time.sleep(window)
        written, elapsed = write_bytes(gateway.pid) - before, time.monotonic() - t0
        publisher.join()
        stored, done = rig.wait_stored(gateway.database, ("temperature",), count)
        usage = watch.stop()
    kib_per_min = written / 1024 / elapsed * 60
    row = Row.measured(
        id,
        f"gateway, {DISK_DEVICES} devices × 1 reading/s",
        qos=1,
        vs=vs,
        sent=report["sent"],
        done=done,
        messages=stored,
        usage=usage,
        lost=count - stored,
        paced=True,
    )
    row.notes = f"disk writes {kib_per_min:,.1f} KiB/min (write_bytes over {elapsed:.0f} s)"
    row.figures["disk_kib_per_min"] = kib_per_min
    return row
