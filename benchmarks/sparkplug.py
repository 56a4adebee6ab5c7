"""Sparkplug B decoding cost: one DDATA with 10 aliased metrics, through the host, one core.

What the gateway's ingest thread pays per Sparkplug message before the pipeline:
parse the protobuf, check the sequence number, resolve each alias against the
DBIRTH, read each value by its datatype and build the readings (with their units).
The payload is built once by the simulator's encoder; its sequence number is
rewritten each time so every message is in order (a gap would refuse it).

The baseline, in the same run: the ``json`` format decoding the same ten values as
one JSON object (``{"Inputs/Sensor 0": 7, …, "ts": …}``), so the ratio travels
between machines where the absolute numbers do not.

Run:  .venv/bin/python benchmarks/sparkplug.py [--messages N]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devices import catalog
from devices.decoding import Message
from devices.sparkplug.host import SparkplugHost
from simulators.sparkplug import EdgeNode, MetricSpec
from wire import sparkplug_b_pb2 as pb

METRICS = 10


def setup() -> tuple[SparkplugHost, EdgeNode, str, list[bytes]]:
    """A host that saw the births, and the 256 DDATA bodies of one sequence cycle."""
    specs = [MetricSpec(f"Inputs/Sensor {i}", pb.Double if i % 2 else pb.Int32, i, "°C")
             for i in range(METRICS)]  # fmt: skip
    node = EdgeNode(devices={"plc": specs})
    host = SparkplugHost()
    for topic, body in node.births(now_ms=1_795_755_840_000):
        assert host.receive(topic, body, time.time_ns()).refusal is None
    values = {s.name: (21.5 if s.datatype == pb.Double else 7) for s in specs}
    topic, body = node.data("plc", values, now_ms=1_795_755_841_000)
    template = pb.Payload()
    template.ParseFromString(body)
    first = template.seq  # the number after the births
    bodies = []
    for i in range(256):  # one message per sequence number, starting where the birth left it
        template.seq = (first + i) % 256
        bodies.append(template.SerializeToString())
    return host, node, topic, bodies


def run(messages: int) -> dict[str, float]:
    host, _, topic, bodies = setup()
    now = time.time_ns()
    receive = host.receive
    readings = 0
    start = time.perf_counter()
    for i in range(messages):
        step = receive(topic, bodies[i % 256], now)
        readings += len(step.readings)
    elapsed = time.perf_counter() - start
    assert readings == messages * METRICS, (readings, host.rebirths)
    return {
        "messages": messages,
        "bytes_per_message": len(bodies[0]),
        "us_per_message": elapsed / messages * 1e6,
        "messages_per_s": messages / elapsed,
        "readings_per_s": readings / elapsed,
    }


def baseline(messages: int) -> float:
    """µs per message for the ``json`` format on the same ten values."""
    decoder = catalog.get("json")(
        {"topic": "sensors/{device}", "format": "json", "time_field": "ts", "tags": {}}
    )
    values = {f"Inputs/Sensor {i}": (21.5 if i % 2 else 7) for i in range(METRICS)}
    body = json.dumps({**values, "ts": 1_795_755_841_000}).encode()
    message = Message("sensors/plc", body, {"device": "plc"}, time.time_ns())
    start = time.perf_counter()
    for _ in range(messages):
        decoder.decode(message)
    return (time.perf_counter() - start) / messages * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    args = parser.parse_args()
    run(2_000)  # warm up
    baseline(2_000)
    result = run(args.messages)
    json_us = baseline(args.messages)
    ratio = result["us_per_message"] / json_us
    print(
        f"DDATA with {METRICS} metrics ({result['bytes_per_message']:.0f} bytes), "
        f"{result['messages']:.0f} messages: {result['us_per_message']:.1f} µs per message, "
        f"{result['messages_per_s']:,.0f} messages/s, {result['readings_per_s']:,.0f} readings/s"
    )
    print(f"the json format on the same ten values: {json_us:.1f} µs; Sparkplug / json {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
