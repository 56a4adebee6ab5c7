"""Rules in the gateway: throughput cost of 100 rules, and reading-to-alert latency.

    .venv/bin/python -m benchmarks.rules_e2e [--count 100000] [--rounds 3] [--seconds 20]

1. Throughput: rounds alternate the real gateway with no rules and with 100 rules,
   of which every reading matches 10 (window rules included: avg, max, rate, count,
   stddev… over 1-5 minutes; none fires, so only evaluation is measured). Same publisher, same
   broker, same influxd; reported as the ratio with/without.
2. Latency at 1,000 readings/s: a paced publisher sends readings below a threshold,
   and every 20th reading (on a fresh device) above it. The rule has no ``for`` and
   commands ``fan-1``: for each trigger the time from publish to the alert event
   (``outpost/alerts/…``) and to the command (``devices/fan-1/set``) received by a
   subscriber in the same process (one clock) is recorded; p50/p99/max reported.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import yaml

from benchmarks.ingest import REPO, end_to_end
from tests.services import InfluxDB, Mosquitto, free_port

WINDOW_EXPRESSIONS = [
    "value > 1000",
    "avg(1m) > 1000",
    "max(5m) > 1000",
    "min(2m) < -1000",
    "rate(1m) > 1000",
    "count(1m) > 1000000",
    "abs(value - avg(5m)) > 1000",
    "delta(3m) > 1000",
    "stddev(5m) > 1000",
    "sum(1m) > 1e12",
]


def hundred_rules() -> str:
    """100 rules in 10 groups by the device id's last digit: each reading matches 10,
    one of each expression kind (so every window function is maintained)."""
    rules = []
    for i in range(100):
        expr = WINDOW_EXPRESSIONS[(i // 10) % len(WINDOW_EXPRESSIONS)]
        rules.append(
            {
                "name": f"bench_{i:03d}",
                "match": {"metric": "temperature", "device": f"bench-???{i % 10}"},
                "when": f"{expr} or value > {2000 + i}",
                "severity": "info",
            }
        )
    return yaml.safe_dump({"rules": rules}, sort_keys=False)


def throughput(count: int, rounds: int, workdir: Path) -> dict[str, object]:
    rules_file = workdir / "bench-rules.yaml"
    rules_file.write_text(hundred_rules())
    without, with_rules = [], []
    with (
        Mosquitto(max_queued_messages=0, extra_config=["max_queued_bytes 0"]) as broker,
        InfluxDB() as influx,
    ):
        for r in range(rounds):
            without.append(end_to_end(broker, influx, count, workdir, f"none{r}")["rate"])
            with_rules.append(
                end_to_end(
                    broker, influx, count, workdir, f"rules{r}", {"rules": [str(rules_file)]}
                )["rate"]
            )
            print(
                f"round {r + 1}: no rules {without[-1]:,.0f}/s, 100 rules "
                f"{with_rules[-1]:,.0f}/s ({with_rules[-1] / without[-1]:.2f})",
                file=sys.stderr,
            )
    ratios = [w / n for w, n in zip(with_rules, without, strict=True)]
    return {
        "without": statistics.median(without),
        "with": statistics.median(with_rules),
        "ratios": ratios,
    }


LATENCY_RULE = """
rules:
  - name: latency_hot
    match: {metric: temperature}
    when: value > 50
    clear: value < 40
    severity: warning
    actions:
      - command: {device: fan-1, set: {speed: 100}}
"""


def latency(seconds: float, workdir: Path) -> dict[str, list[float]]:
    rules_file = workdir / "latency-rules.yaml"
    rules_file.write_text(LATENCY_RULE)
    with Mosquitto() as broker, InfluxDB() as influx:
        config = {
            "mqtt": {"host": "127.0.0.1", "port": broker.port, "client_id": "bench-latency"},
            "influx": {"url": influx.url, "database": "latency"},
            "inputs": [{"topic": "sensors/{device}/{metric}", "format": "value", "qos": 1}],
            "rules": [str(rules_file)],
            "devices": {"fan-1": {"commands": {"speed": {"type": "int", "min": 0, "max": 100}}}},
            "state_dir": str(workdir / "var-latency"),
            "http": {"listen": f"127.0.0.1:{free_port()}"},
            "log_level": "error",
        }
        path = workdir / "latency.yaml"
        path.write_text(yaml.safe_dump(config))
        gateway = subprocess.Popen(
            [sys.executable, "-m", "gateway", "run", "-c", str(path)], cwd=REPO
        )
        sent: dict[str, float] = {}
        alerts: dict[str, float] = {}
        commands: list[float] = []
        lock = threading.Lock()

        def on_message(client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
            now = time.perf_counter()
            with lock:
                if msg.topic.startswith("outpost/alerts/"):
                    event = json.loads(msg.payload)
                    if event["state"] == "firing":
                        alerts[event["device"]] = now
                elif msg.topic == "devices/fan-1/set":
                    commands.append(now)

        watcher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-watch")
        watcher.on_message = on_message
        watcher.connect("127.0.0.1", broker.port)
        watcher.subscribe([("outpost/alerts/#", 1), ("devices/fan-1/set", 1)])
        watcher.loop_start()
        publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-pace")
        publisher.connect("127.0.0.1", broker.port)
        publisher.loop_start()
        time.sleep(2.0)  # the gateway connects and subscribes
        try:
            rate, start = 1000.0, time.perf_counter()
            triggers: list[str] = []
            total = int(seconds * rate)
            for i in range(total):
                due = start + i / rate
                while (delay := due - time.perf_counter()) > 0:
                    time.sleep(min(delay, 0.002))
                if i % 20 == 10:
                    device = f"trig-{i}"
                    with lock:
                        sent[device] = time.perf_counter()
                    triggers.append(device)
                    publisher.publish(f"sensors/{device}/temperature", "99", qos=1)
                else:
                    publisher.publish(f"sensors/plain-{i % 50}/temperature", "21.5", qos=1)
            achieved = total / (time.perf_counter() - start)
            time.sleep(2.0)
        finally:
            gateway.terminate()
            gateway.wait(30)
            publisher.loop_stop()
            watcher.loop_stop()
    with lock:
        to_alert = [(alerts[d] - sent[d]) * 1000 for d in triggers if d in alerts]
        command_times = sorted(commands)
        sent_times = [sent[d] for d in triggers]
        to_command = [(c - s) * 1000 for s, c in zip(sent_times, command_times, strict=False)]
    if len(to_alert) != len(triggers):
        raise SystemExit(f"{len(triggers) - len(to_alert)} alerts missing")
    return {"alert": to_alert, "command": to_command, "achieved": [achieved]}


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="outpost-bench-rules-"))
    tp = throughput(args.count, args.rounds, workdir)
    lat = latency(args.seconds, workdir)
    ratios = tp["ratios"]
    print(f"| end to end, {args.count:,} QoS 0 readings per run, median of {args.rounds} | |")
    print("|---|---|")
    print(f"| no rules | {tp['without']:,.0f} readings/s |")
    print(
        f"| 100 rules, each reading matches 10 (window rules included) | "
        f"{tp['with']:,.0f} readings/s |"
    )
    print(
        f"| ratio with/without, per round | {', '.join(f'{x:.2f}' for x in ratios)} "
        f"(median {statistics.median(ratios):.2f}) |"
    )
    print(f"| latency run: readings/s achieved | {lat['achieved'][0]:,.0f} (QoS 1) |")
    for name in ("alert", "command"):
        values = lat[name]
        print(
            f"| reading → {name} received, {len(values)} samples | p50 {pct(values, 50):.1f} ms, "
            f"p99 {pct(values, 99):.1f} ms, max {max(values):.1f} ms |"
        )


if __name__ == "__main__":
    main()
