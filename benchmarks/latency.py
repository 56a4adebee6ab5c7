"""Reading → alert and reading → command latency while the gateway carries a paced load.

The publisher (``--triggers``) sends one message every 20 ms to a trigger device
``trig-00`` … ``trig-49``, alternately hot (above 100, a different value each time) and
cool (21). One rule without ``for`` fires on a hot reading and resolves on a cool one,
and commands the device itself. In this process, on the same wall clock as the
publisher's send times:

- an alert watcher subscribed to ``outpost/alerts/#`` notes each ``firing`` event; its
  ``value`` names the hot reading that fired it;
- the trigger devices, one client subscribed to ``devices/+/set``, note each new command
  id and acknowledge it as an ``outpost``-convention device does (``devices/<id>/ack``);
  a device's n-th command answers its n-th hot reading (each firing commands once).

A hot reading whose alert or command never came is counted as missing.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from benchmarks import yamlout
from benchmarks.procstat import Usage, Watch
from benchmarks.publisher import TRIGGER_DEVICES
from benchmarks.report import Row
from benchmarks.rig import Gateway, Rig

RULE = {
    "name": "bench_hot",
    "match": {"metric": "temperature", "device": "trig-*"},
    "when": "value > 50",
    "clear": "value < 40",
    "severity": "warning",
    "actions": [{"command": {"device": "{device}", "set": {"speed": 100}}}],
}
DEVICES = [f"trig-{k:02d}" for k in range(TRIGGER_DEVICES)]


def gateway_extra(workdir: Path) -> dict[str, Any]:
    rules = workdir / "latency-rules.yaml"
    rules.write_text(yamlout.dump({"rules": [RULE]}, sort_keys=False))
    speed = {"speed": {"type": "int", "min": 0, "max": 100}}
    return {"rules": [str(rules)], "devices": {d: {"commands": speed} for d in DEVICES}}


class Watcher:
    """The alert watcher and the trigger devices (see the module's description)."""

    def __init__(self, rig: Rig, name: str) -> None:
        self.rig = rig
        self.alerts: dict[int, float] = {}  # hot value → when its firing event came
        self.commands: dict[str, list[float]] = defaultdict(list)  # device → new ids' times
        self._command_ids: set[str] = set()
        self._lock = threading.Lock()
        self.clients = [
            self._client(f"bench-{name}-alerts", "outpost/alerts/#", self._on_alert),
            self._client(f"bench-{name}-devices", "devices/+/set", self._on_command),
        ]

    def _client(self, client_id: str, topic: str, handler: Any) -> mqtt.Client:
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
        client.on_message = handler
        client.connect("127.0.0.1", self.rig.port)
        client.subscribe(topic, qos=1)
        client.loop_start()
        self.rig.wait_subscribed(client_id, 1, topic)
        return client

    def _on_alert(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        now = time.time()
        event = json.loads(msg.payload)
        if event["state"] == "firing":
            with self._lock:
                self.alerts.setdefault(round(event["value"]), now)

    def _on_command(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        now = time.time()
        device = msg.topic.split("/")[1]
        command_id = json.loads(msg.payload)["id"]
        with self._lock:
            if command_id not in self._command_ids:  # not a retry
                self._command_ids.add(command_id)
                self.commands[device].append(now)
        client.publish(f"devices/{device}/ack", json.dumps({"id": command_id, "ok": True}), 1)

    def wait(self, expected: int, idle: float = 5.0) -> None:
        """Until ``expected`` alerts and commands arrived, or none for ``idle`` s."""
        last, changed = -1, time.monotonic()
        while time.monotonic() - changed < idle:
            with self._lock:
                got = [len(self.alerts), len(self._command_ids)]
            if min(got) >= expected:
                return
            if sum(got) != last:
                last, changed = sum(got), time.monotonic()
            time.sleep(0.05)

    def close(self) -> None:
        for client in self.clients:
            client.disconnect()
            client.loop_stop()


def alert_delays(hot: list[tuple[str, int, float]], alerts: dict[int, float]) -> list[float | None]:
    """ms from each hot reading to the firing event carrying its value (None: none came)."""
    return [(alerts[value] - sent) * 1000 if value in alerts else None for _, value, sent in hot]


def command_delays(
    hot: list[tuple[str, int, float]], commands: dict[str, list[float]]
) -> list[float | None]:
    """ms from each hot reading to its device's command of the same rank (None: none came)."""
    rank: dict[str, int] = defaultdict(int)
    out: list[float | None] = []
    for device, _, sent in hot:
        times, n = commands.get(device, []), rank[device]
        rank[device] += 1
        out.append((times[n] - sent) * 1000 if n < len(times) else None)
    return out


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


@dataclass
class Samples:
    """One entry per hot reading: its send time and its two delays (None: missing)."""

    sent: list[float]
    alert_ms: list[float | None]
    command_ms: list[float | None]

    def between(self, start: float, end: float) -> Samples:
        keep = [i for i, t in enumerate(self.sent) if start <= t < end]
        return Samples(
            [self.sent[i] for i in keep],
            [self.alert_ms[i] for i in keep],
            [self.command_ms[i] for i in keep],
        )

    def figures(self) -> dict[str, float]:
        out: dict[str, float] = {"hot_readings": len(self.sent)}
        for name, delays in (("alert", self.alert_ms), ("command", self.command_ms)):
            got = [d for d in delays if d is not None]
            out[f"{name}_p50_ms"] = percentile(got, 50)
            out[f"{name}_p99_ms"] = percentile(got, 99)
            out[f"{name}_missing"] = len(delays) - len(got)
        return out


@dataclass
class Result:
    sent: dict[str, Any]  # the publisher's report
    stored: int
    done: float  # wall-clock time all were stored
    usage: Usage
    rss: list[tuple[float, int]]  # (time, VmRSS KiB) of the gateway
    samples: Samples


def run(rig: Rig, name: str, rate: float, seconds: float) -> Result:
    """The gateway with the trigger rule, ``rate`` readings/s (QoS 0) for ``seconds``."""
    count = max(1, round(rate * seconds))
    inputs = [{"topic": "bench/{device}/{metric}", "format": "value", "qos": 0}]
    gateway = Gateway(rig, name, inputs, gateway_extra(rig.workdir))
    link_ready = (("-link", f"devices/{DEVICES[-1]}/ack"),)
    with gateway.start(wait_for=link_ready):
        watcher = Watcher(rig, name)
        try:
            watch = Watch(gateway.pid, interval=1.0).start()
            sent = rig.publish(count, rate=rate, triggers=True)
            stored, done = rig.wait_stored(gateway.database, ("temperature",), count)
            usage = watch.stop()
            watcher.wait(expected=len(sent["hot"]))
        finally:
            watcher.close()
    hot = [(device, value, t) for device, value, t in sent["hot"]]
    samples = Samples(
        [t for _, _, t in hot],
        alert_delays(hot, watcher.alerts),
        command_delays(hot, watcher.commands),
    )
    return Result(sent, stored, done, usage, watch.rss, samples)


def describe(f: dict[str, float]) -> str:
    """Latency figures (from :meth:`Samples.figures`) in a few words."""
    text = (
        f"alert p50 {f['alert_p50_ms']:.1f} ms, p99 {f['alert_p99_ms']:.1f} ms; command p50 "
        f"{f['command_p50_ms']:.1f} ms, p99 {f['command_p99_ms']:.1f} ms "
        f"({f['hot_readings']:.0f} hot readings"
    )
    if f["alert_missing"] or f["command_missing"]:
        text += f"; missing: {f['alert_missing']:.0f} alerts, {f['command_missing']:.0f} commands"
    return text + ")"


def as_row(result: Result, id: str, name: str, *, vs: str) -> Row:
    out = Row.measured(
        id,
        name,
        qos=0,
        vs=vs,
        sent=result.sent,
        done=result.done,
        messages=result.stored,
        usage=result.usage,
        lost=result.sent["sent"] - result.stored,
        paced=True,
    )
    out.figures.update(result.samples.figures())
    out.notes = describe(out.figures)
    return out


def row(rig: Rig, id: str, name: str, rate: float, seconds: float, *, vs: str) -> Row:
    return as_row(run(rig, id.lower(), rate, seconds), id, name, vs=vs)
