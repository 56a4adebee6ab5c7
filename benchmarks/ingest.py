"""Ingest benchmark: gateway end-to-end throughput against the raw MQTT receive ceiling.

    .venv/bin/python -m benchmarks.ingest [--count 200000] [--rounds 3]

Starts its own Mosquitto and influxd (tests/services.py), then alternates, in
one invocation and with the same QoS 0 publisher:

(a) raw ceiling: a bare paho subscriber that only counts messages;
(b) end to end: the real ``outpost run`` process, from the first publish until
    InfluxDB holds every reading (counted with ``SELECT count(*)``).

Rates are readings per second from the publisher's start to the last message
counted (a) or stored (b). The ratio (b)/(a) is the figure that travels across
machines; absolute numbers do not. Also reported: the gateway's CPU seconds per
10,000 readings and its peak RSS (VmHWM). Any reading missing fails the run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.services import InfluxDB, Mosquitto, free_port  # noqa: E402

DEVICES = 100


def _py(*args: str, **kw: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, *args], cwd=REPO, text=True, stdout=subprocess.PIPE, **kw
    )  # type: ignore[call-overload]


def publish(port: int, count: int) -> tuple[float, float]:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks._mqtt_load",
            "publish",
            str(port),
            str(count),
            str(DEVICES),
        ],
        cwd=REPO,
        text=True,
        capture_output=True,
        check=True,
    ).stdout.split()
    return float(out[0]), float(out[1])


def raw_ceiling(port: int, count: int) -> float:
    sub = _py("-m", "benchmarks._mqtt_load", "count", str(port), str(count), "sensors/#")
    assert sub.stdout is not None
    assert sub.stdout.readline().strip() == "ready"
    started, _ = publish(port, count)
    received, _first, last = sub.stdout.readline().split()
    sub.wait()
    if int(received) != count:
        raise SystemExit(f"raw subscriber got {received} of {count}: the broker dropped messages")
    return count / (float(last) - started)


def proc_stats(pid: int) -> tuple[float, int]:
    """(CPU seconds, peak RSS in KiB) of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    hwm = next(
        int(line.split()[1])
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if line.startswith("VmHWM:")
    )
    return cpu, hwm


def stored(influx: InfluxDB, db: str) -> int:
    try:
        answer = influx.query("SELECT count(value) FROM temperature", db)
    except Exception:  # database not created yet
        return 0
    series = answer["results"][0].get("series")
    return int(series[0]["values"][0][1]) if series else 0


def end_to_end(
    broker: Mosquitto,
    influx: InfluxDB,
    count: int,
    workdir: Path,
    round_no: int | str,
    extra: dict[str, object] | None = None,
) -> dict[str, float]:
    """Run ``outpost run`` (with ``extra`` config keys) and time ``count`` readings to influxd."""
    db = f"bench_{round_no}"
    config = {
        "mqtt": {"host": "127.0.0.1", "port": broker.port, "client_id": f"bench-gw-{round_no}"},
        "influx": {"url": influx.url, "database": db},
        "inputs": [{"topic": "sensors/{device}/{metric}", "format": "value", "qos": 0}],
        "state_dir": str(workdir / f"var-{round_no}"),
        "rules": [],
        "http": {"listen": f"127.0.0.1:{free_port()}"},
        "log_level": "warning",
        **(extra or {}),
    }
    path = workdir / f"gw-{round_no}.yaml"
    path.write_text(yaml.safe_dump(config))
    log = open(workdir / f"gw-{round_no}.log", "w")  # noqa: SIM115
    gw = subprocess.Popen(
        [sys.executable, "-m", "gateway", "run", "-c", str(path)],
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        time.sleep(1.5)  # connect and subscribe
        cpu0, _ = proc_stats(gw.pid)
        started, _ = publish(broker.port, count)
        deadline = time.time() + 300
        n = 0
        while n < count and time.time() < deadline:
            time.sleep(0.05)
            n = stored(influx, db)
        finished = time.time()
        cpu1, hwm = proc_stats(gw.pid)
    finally:
        gw.terminate()
        gw.wait(30)
        log.close()
    if n != count:
        raise SystemExit(f"end to end: {n} of {count} readings stored (see {log.name})")
    return {
        "rate": count / (finished - started),
        "cpu_per_10k": (cpu1 - cpu0) / count * 10_000,
        "rss_mb": hwm / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="outpost-bench-"))
    # The broker queues everything for a slow subscriber instead of dropping QoS 0.
    with (
        Mosquitto(max_queued_messages=0, extra_config=["max_queued_bytes 0"]) as broker,
        InfluxDB() as influx,
    ):
        raws, e2es = [], []
        for r in range(args.rounds):
            raws.append(raw_ceiling(broker.port, args.count))
            e2es.append(end_to_end(broker, influx, args.count, workdir, r))
            print(
                f"round {r + 1}: raw {raws[-1]:,.0f}/s, gateway {e2es[-1]['rate']:,.0f}/s "
                f"({e2es[-1]['rate'] / raws[-1]:.2f})",
                file=sys.stderr,
            )
    raw = statistics.median(raws)
    rate = statistics.median(e["rate"] for e in e2es)
    ratios = [e["rate"] / a for e, a in zip(e2es, raws, strict=True)]
    print(f"| readings per run | {args.count:,} QoS 0, {DEVICES} devices, value format |")
    print("|---|---|")
    print(f"| (a) raw paho subscriber ceiling, median of {args.rounds} | {raw:,.0f} msg/s |")
    print(f"| (b) gateway end to end (publish → stored in influxd) | {rate:,.0f} readings/s |")
    print(
        f"| ratio (b)/(a), per round | {', '.join(f'{x:.2f}' for x in ratios)} "
        f"(median {statistics.median(ratios):.2f}) |"
    )
    print(
        f"| gateway CPU per 10k readings | "
        f"{statistics.median(e['cpu_per_10k'] for e in e2es):.2f} s |"
    )
    print(f"| gateway peak RSS | {max(e['rss_mb'] for e in e2es):.0f} MiB |")
    print("| readings lost | 0 (every run stored all of them) |")


if __name__ == "__main__":
    main()
