"""Receive benchmark: the gateway's own MQTT client against raw paho-mqtt, counting only.

    python -m benchmarks.receive [--count 200000] [--rounds 3] [--qos 0|1]

The rig of ``make bench`` (benchmarks/rig.py: one Mosquitto, the raw-socket publisher of
benchmarks/publisher.py) without the gateway's pipeline: what the ingest connection
alone receives. Each round, one after the other:

- ``paho 3.1.1`` and ``paho 5``: the raw counter of the baselines (benchmarks/counter.py,
  rows B2/B3/B4 of ``make bench``; paho acknowledges QoS 1 itself);
- ``outpost``: the ingest source as the gateway runs it
  (:class:`gateway.mqtt.subscriber.MqttSource`: MQTT 5, Receive Maximum, one batch per
  socket read on the event loop) counting what it is handed; at QoS 1 it acknowledges
  each batch as it arrives. This module runs it with ``--counter``, which takes the
  options of benchmarks/counter.py and prints what it prints.

Rates count from the publisher's first write to the last message received; each ratio is
against paho 3.1.1 of the same round. The machine is shared: the table gives the median
and the range over the rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.baselines import counted, paho
from benchmarks.report import Row
from benchmarks.rig import Rig

CLIENTS = ("paho 3.1.1", "paho 5", "outpost")


def count_with_the_source(args: argparse.Namespace) -> None:
    """``--counter``: the ingest source counting, with the protocol of benchmarks/counter.py."""
    from gateway.config.schema import MqttConfig
    from gateway.metrics import Metrics
    from gateway.mqtt.subscriber import MqttSource

    received, last = 0, time.time()

    async def run() -> None:
        nonlocal received, last
        done = asyncio.Event()

        def batch(messages: Sequence[tuple[str, bytes, Any]]) -> None:
            nonlocal received, last
            received += len(messages)
            last = time.time()
            if args.qos:
                source.ack([token for _, _, token in messages])
            if received >= args.count:
                done.set()

        # session_expiry 0: no session left behind for the broker to queue the next rounds.
        cfg = MqttConfig(host="127.0.0.1", port=args.port, client_id=args.client_id,
                         session_expiry=0)  # fmt: skip
        source = MqttSource(cfg, [(args.topic, args.qos)], Metrics())
        source.start(lambda topic, payload, token: None, batch)
        while not done.is_set() and time.time() - last < args.idle:
            await asyncio.sleep(0.2)
        print(json.dumps({"received": received, "last": last}), flush=True)
        await asyncio.to_thread(sys.stdin.read)
        await asyncio.to_thread(source.stop)

    asyncio.run(run())


def one_round(rig: Rig, round_no: int, count: int, qos: int) -> dict[str, Row]:
    rows = {
        "paho 3.1.1": paho(rig, f"p3-{round_no}", "paho 3.1.1", count, vs="", qos=qos),
        "paho 5": paho(rig, f"p5-{round_no}", "paho 5", count, vs="", qos=qos, protocol="5"),
        "outpost": counted(
            rig, f"rx-{round_no}", "outpost", count,
            [sys.executable, "-m", "benchmarks.receive", "--counter"], vs="", qos=qos,
        ),
    }  # fmt: skip
    for name, row in rows.items():
        if row.lost:
            raise SystemExit(f"{name}: {row.lost} of {count} messages never arrived")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--qos", type=int, choices=(0, 1), default=0)
    parser.add_argument("--counter", action="store_true", help=argparse.SUPPRESS)
    for option in ("--port", "--idle"):
        parser.add_argument(option, type=float, help=argparse.SUPPRESS)
    for option in ("--topic", "--client-id"):
        parser.add_argument(option, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.counter:
        args.port = int(args.port)
        count_with_the_source(args)
        return

    workdir = Path(tempfile.mkdtemp(prefix="outpost-receive-"))
    rounds: list[dict[str, Row]] = []
    with Rig(workdir) as rig:
        for r in range(args.rounds):
            rounds.append(one_round(rig, r, args.count, args.qos))
            line = ", ".join(
                f"{name} {row.rate:,.0f} msg/s ({row.cpu_per_10k:.2f} s CPU/10k)"
                for name, row in rounds[-1].items()
            )
            print(f"round {r + 1}: {line}", file=sys.stderr)
    shutil.rmtree(workdir, ignore_errors=True)
    print(f"| {args.count:,} QoS {args.qos} messages, {args.rounds} rounds | msg/s, median "
          "(range) | vs paho 3.1.1, per round | CPU s/10k msg |")  # fmt: skip
    print("|---|---|---|---|")
    for name in CLIENTS:
        rates = [r[name].rate for r in rounds]
        ratios = [r[name].rate / r["paho 3.1.1"].rate for r in rounds]
        cpu = statistics.median(r[name].cpu_per_10k for r in rounds)
        print(f"| {name} | {statistics.median(rates):,.0f} ({min(rates):,.0f}–{max(rates):,.0f}) "
              f"| {', '.join(f'{x:.2f}' for x in ratios)} | {cpu:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
