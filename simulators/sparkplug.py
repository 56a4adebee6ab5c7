"""A simulated Sparkplug B (3.0.0) edge node with devices, and the faults real ones have.

It speaks only MQTT, like every simulator; its payloads are built with the shared
schema module (``wire/sparkplug_b_pb2.py``). Two layers:

- :class:`EdgeNode` is pure: it builds the node's messages (NDEATH as will, NBIRTH,
  DBIRTH, NDATA, DDATA, DDEATH) with its ``bdSeq``, sequence numbers (0..255,
  per node) and aliases, and applies commands (NCMD ``Node Control/Rebirth``,
  DCMD writes). **Faults** are explicit calls: :meth:`EdgeNode.skip` (a sequence
  gap), :meth:`EdgeNode.unknown_alias` (data naming an alias no birth defined),
  data before births (call :meth:`EdgeNode.data` first), :meth:`EdgeNode.device_death`.
- :class:`SimulatedEdgeNode` runs one on a paho connection: its NDEATH is the will,
  it births once connected (or, with ``primary_host``, once that host's STATE says
  online), answers rebirth requests, applies DCMD writes and reports the new values
  in a DDATA, and can die without a DISCONNECT (:meth:`SimulatedEdgeNode.kill`) so
  the broker delivers the NDEATH.

``python -m simulators.sparkplug --port 1883`` runs the default node
(``plant1``/``press-7`` with a device ``motor``) publishing every second.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt

from wire import sparkplug_b_pb2 as pb

NAMESPACE = "spBv1.0"
REBIRTH = "Node Control/Rebirth"

Message = tuple[str, bytes]  # (topic, payload)


@dataclass
class MetricSpec:
    """One metric of the simulated node or device."""

    name: str
    datatype: int
    value: Any
    unit: str = ""
    writable: bool = False


def default_node_metrics() -> list[MetricSpec]:
    return [
        MetricSpec(REBIRTH, pb.Boolean, False, writable=True),
        MetricSpec("Properties/Hardware Make", pb.String, "Outpost simulator"),
        MetricSpec("Properties/Uptime", pb.UInt64, 0, "s"),
    ]


def default_devices() -> dict[str, list[MetricSpec]]:
    """``motor``: one metric of every scalar datatype, two of them writable."""
    return {
        "motor": [
            MetricSpec("Inputs/Temperature", pb.Float, 21.5, "°C"),
            MetricSpec("Inputs/Pressure", pb.Double, 1.013, "bar"),
            MetricSpec("Inputs/Offset", pb.Int8, -3, "mm"),
            MetricSpec("Inputs/Torque", pb.Int16, -1200, "N·m"),
            MetricSpec("Inputs/Position", pb.Int32, -70000, "count"),
            MetricSpec("Inputs/Energy", pb.Int64, -5_000_000_000, "Wh"),
            MetricSpec("Inputs/Load", pb.UInt8, 200, "%"),
            MetricSpec("Inputs/Rpm", pb.UInt16, 1450, "rpm"),
            MetricSpec("Inputs/Cycles", pb.UInt32, 4_000_000_000),
            MetricSpec("Inputs/Hours", pb.UInt64, 12_345_678_901, "h"),
            MetricSpec("Inputs/Running", pb.Boolean, True),
            MetricSpec("Inputs/Mode", pb.String, "auto"),
            MetricSpec("Inputs/Serviced", pb.DateTime, 1_795_000_000_000),
            MetricSpec("Inputs/Note", pb.Text, "checked by the night shift"),
            MetricSpec("Outputs/Speed", pb.Int32, 50, "%", writable=True),
            MetricSpec("Outputs/Enabled", pb.Boolean, True, writable=True),
        ]
    }


def set_value(metric: pb.Payload.Metric, datatype: int, value: Any) -> None:
    """Write ``value`` into the field of ``datatype`` (Sparkplug 3.0.0 §6.4.16)."""
    if datatype in (pb.Int8, pb.Int16, pb.Int32, pb.UInt8, pb.UInt16, pb.UInt32):
        metric.int_value = value % (1 << 32)  # negative numbers sign-extended to 32 bits
    elif datatype in (pb.Int64, pb.UInt64, pb.DateTime):
        metric.long_value = value % (1 << 64)
    elif datatype == pb.Float:
        metric.float_value = value
    elif datatype == pb.Double:
        metric.double_value = value
    elif datatype == pb.Boolean:
        metric.boolean_value = value
    else:
        metric.string_value = value


def get_value(metric: pb.Payload.Metric, datatype: int) -> Any:
    """The value of a command's metric, read as ``datatype`` (the one it was born with)."""
    field_name = metric.WhichOneof("value")
    raw = getattr(metric, field_name) if field_name else None
    bits = {pb.Int8: 8, pb.Int16: 16, pb.Int32: 32, pb.Int64: 64}.get(datatype)
    if bits is not None and isinstance(raw, int):
        width = 32 if field_name == "int_value" else 64
        return raw - (1 << width) if raw >> (width - 1) else raw
    return raw


@dataclass
class _Entity:
    metrics: dict[str, MetricSpec]
    aliases: dict[str, int]


@dataclass
class EdgeNode:
    """The pure model of one edge node; see the module docstring."""

    group: str = "plant1"
    node: str = "press-7"
    node_metrics: list[MetricSpec] = field(default_factory=default_node_metrics)
    devices: dict[str, list[MetricSpec]] = field(default_factory=default_devices)
    aliases: bool = True
    bdseq: int = 0
    seq: int = 255  # the last sequence number sent; births() starts again at 0

    def __post_init__(self) -> None:
        next_alias = 1
        self._entities: dict[str, _Entity] = {}
        for owner, specs in [("", self.node_metrics), *self.devices.items()]:
            table = {}
            for spec in specs:
                table[spec.name] = next_alias
                next_alias += 1
            self._entities[owner] = _Entity({s.name: s for s in specs}, table)
        self._next_alias = next_alias
        self.born = False

    # --- topics --------------------------------------------------------------------

    def topic(self, kind: str, device: str = "") -> str:
        base = f"{NAMESPACE}/{self.group}/{kind}/{self.node}"
        return f"{base}/{device}" if device else base

    def _next_seq(self) -> int:
        self.seq = (self.seq + 1) % 256
        return self.seq

    # --- messages ------------------------------------------------------------------

    def death(self) -> Message:
        """The NDEATH (the connection's will): only the bdSeq, no sequence number."""
        payload = pb.Payload(timestamp=_now_ms())
        metric = payload.metrics.add(name="bdSeq", datatype=pb.Int64)
        metric.long_value = self.bdseq
        return self.topic("NDEATH"), payload.SerializeToString()

    def births(self, now_ms: int | None = None) -> list[Message]:
        """NBIRTH (sequence 0, the same bdSeq as the will) and one DBIRTH per device."""
        now_ms = now_ms or _now_ms()
        self.seq = 255
        nbirth = self._payload(now_ms)
        nbirth.seq = self._next_seq()
        bd = nbirth.metrics.add(name="bdSeq", timestamp=now_ms, datatype=pb.Int64)
        bd.long_value = self.bdseq
        self._add_all(nbirth, "", now_ms)
        out = [(self.topic("NBIRTH"), nbirth.SerializeToString())]
        for device in self.devices:
            dbirth = self._payload(now_ms)
            dbirth.seq = self._next_seq()
            self._add_all(dbirth, device, now_ms)
            out.append((self.topic("DBIRTH", device), dbirth.SerializeToString()))
        self.born = True
        return out

    def data(self, device: str, values: dict[str, Any], now_ms: int | None = None) -> Message:
        """NDATA (``device`` ``""``) or DDATA with ``values``, by alias (or by name)."""
        now_ms = now_ms or _now_ms()
        entity = self._entities[device]
        payload = self._payload(now_ms)
        payload.seq = self._next_seq()
        for name, value in values.items():
            spec = entity.metrics[name]
            spec.value = value
            metric = payload.metrics.add(timestamp=now_ms)
            if self.aliases:
                metric.alias = entity.aliases[name]
            else:
                metric.name = name
            set_value(metric, spec.datatype, value)
        kind = "DDATA" if device else "NDATA"
        return self.topic(kind, device), payload.SerializeToString()

    def device_death(self, device: str, now_ms: int | None = None) -> Message:
        payload = self._payload(now_ms or _now_ms())
        payload.seq = self._next_seq()
        return self.topic("DDEATH", device), payload.SerializeToString()

    # --- faults --------------------------------------------------------------------

    def skip(self, count: int = 1) -> None:
        """Lose ``count`` messages: the next one carries a sequence number ``count`` ahead."""
        self.seq = (self.seq + count) % 256

    def unknown_alias(self, device: str, value: float = 1.0) -> Message:
        """A data message naming an alias that no birth defined."""
        payload = self._payload(_now_ms())
        payload.seq = self._next_seq()
        metric = payload.metrics.add(alias=self._next_alias + 1000, timestamp=_now_ms())
        metric.double_value = value
        return self.topic("DDATA" if device else "NDATA", device), payload.SerializeToString()

    # --- commands ------------------------------------------------------------------

    def command(self, topic: str, body: bytes) -> tuple[bool, dict[str, dict[str, Any]]]:
        """Apply an NCMD/DCMD: (rebirth asked, {device: {metric: new value}} written)."""
        levels = topic.split("/")
        device = levels[4] if len(levels) == 5 else ""
        entity = self._entities.get(device)
        payload = pb.Payload()
        payload.ParseFromString(body)
        if entity is None:
            return False, {}
        by_alias = {alias: name for name, alias in entity.aliases.items()}
        rebirth = False
        written: dict[str, Any] = {}
        for metric in payload.metrics:
            name = by_alias.get(metric.alias) if metric.HasField("alias") else metric.name
            spec = entity.metrics.get(name or "")
            if spec is None or not spec.writable:
                continue
            value = get_value(metric, spec.datatype)
            if name == REBIRTH:
                rebirth = rebirth or value is True
                continue
            written[spec.name] = value
        return rebirth, {device: written} if written else {}

    # --- helpers -------------------------------------------------------------------

    def _payload(self, now_ms: int) -> pb.Payload:
        return pb.Payload(timestamp=now_ms)

    def _add_all(self, payload: pb.Payload, owner: str, now_ms: int) -> None:
        entity = self._entities[owner]
        for spec in entity.metrics.values():
            metric = payload.metrics.add(name=spec.name, timestamp=now_ms, datatype=spec.datatype)
            if self.aliases:
                metric.alias = entity.aliases[spec.name]
            if spec.unit:
                metric.properties.keys.append("engUnit")
                prop = metric.properties.values.add(type=pb.String)
                prop.string_value = spec.unit
            set_value(metric, spec.datatype, spec.value)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class SimulatedEdgeNode:
    """One :class:`EdgeNode` on its own paho connection (a thread); see the module docstring."""

    def __init__(
        self,
        node: EdgeNode,
        host: str = "127.0.0.1",
        port: int = 1883,
        *,
        primary_host: str | None = None,
        answer_rebirth: bool = True,
        answer_commands: bool = True,
    ) -> None:
        self.model = node
        self.primary_host = primary_host
        self.answer_rebirth = answer_rebirth
        self.answer_commands = answer_commands
        self.commands: list[Message] = []  # every NCMD/DCMD received
        self.rebirths = 0  # rebirth requests answered
        self.host_online = primary_host is None
        self._host_ts = -1
        self._lock = threading.Lock()
        self._host, self._port = host, port
        self.connected = threading.Event()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"spb-sim-{uuid.uuid4().hex[:8]}"
        )
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message

    def start(self, timeout: float = 10.0) -> SimulatedEdgeNode:
        topic, payload = self.model.death()
        self.client.will_set(topic, payload, qos=1, retain=False)
        self.client.connect(self._host, self._port, keepalive=30)
        self.client.loop_start()
        if not self.connected.wait(timeout):
            raise TimeoutError(f"no connection to {self._host}:{self._port}")
        return self

    def publish(self, messages: Iterable[Message]) -> None:
        """Publish as they are (QoS 0): for faults built on :attr:`model` by hand."""
        self._send(lambda: list(messages))

    def send_data(self, device: str, values: dict[str, Any]) -> None:
        self._send(lambda: [self.model.data(device, values)])

    def birth(self) -> None:
        self._send(self.model.births)

    def _send(self, build: Callable[[], list[Message]], wait: bool = True) -> None:
        # Numbered and queued under one lock, so the broker sees them in sequence order.
        with self._lock:
            infos = [self.client.publish(t, p, qos=0) for t, p in build()]
        if wait:
            for info in infos:
                info.wait_for_publish(5)

    def kill(self) -> None:
        """Drop the connection without a DISCONNECT: the broker publishes the NDEATH."""
        sock = self.client.socket()
        self.client.loop_stop()
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def stop(self) -> None:
        """Publish the NDEATH, then disconnect cleanly (Sparkplug 3.0.0 §5.5)."""
        if self.connected.is_set():
            self.publish([self.model.death()])
        self.client.disconnect()
        self.client.loop_stop()

    # --- paho callbacks (network thread) -------------------------------------------

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any = None
    ) -> None:
        m = self.model
        client.subscribe([(m.topic("NCMD"), 0), (m.topic("DCMD", "+"), 0)])
        if self.primary_host is not None:
            client.subscribe(f"{NAMESPACE}/STATE/{self.primary_host}", 1)
        self.connected.set()
        if self.host_online:
            threading.Thread(target=self.birth, daemon=True).start()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        if "/STATE/" in message.topic:
            self._on_state(message.payload)
            return
        self.commands.append((message.topic, message.payload))
        with self._lock:
            rebirth, written = self.model.command(message.topic, message.payload)
        if rebirth and self.answer_rebirth:
            self.rebirths += 1
            self._send(self.model.births, wait=False)  # no waiting on paho's own thread
        if written and self.answer_commands:
            for device, values in written.items():
                self._send(lambda d=device, v=values: [self.model.data(d, v)], wait=False)

    def _on_state(self, body: bytes) -> None:
        try:
            state = json.loads(body)
            online, ts = bool(state["online"]), int(state["timestamp"])
        except (ValueError, KeyError, TypeError):
            return
        if ts < self._host_ts:
            return  # an older session's word (Sparkplug 3.0.0 §5.2)
        self._host_ts = ts
        was, self.host_online = self.host_online, online
        if online and not was:
            threading.Thread(target=self.birth, daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m simulators.sparkplug",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1883)
    parser.add_argument("--group", default="plant1")
    parser.add_argument("--node", default="press-7")
    parser.add_argument("--primary-host", help="birth only while this host's STATE is online")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between DDATA")
    parser.add_argument("--count", type=int, default=0, help="DDATA to send (0: until Ctrl-C)")
    args = parser.parse_args(argv)
    sim = SimulatedEdgeNode(
        EdgeNode(args.group, args.node), args.host, args.port, primary_host=args.primary_host
    ).start()
    sent = 0
    try:
        while not args.count or sent < args.count:
            time.sleep(args.interval)
            if not sim.model.born:
                continue
            t = time.time()
            sim.send_data(
                "motor",
                {
                    "Inputs/Temperature": round(21.5 + 2 * math.sin(t / 60), 2),
                    "Inputs/Rpm": 1400 + int(t) % 100,
                },
            )
            sent += 1
    except KeyboardInterrupt:
        pass
    sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
