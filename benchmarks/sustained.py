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
