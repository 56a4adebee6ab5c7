"""The one publisher of every benchmark row: MQTT 3.1.1 written straight to a socket.

    python -m benchmarks.publisher --port P --count N [--kind value|json] [--qos 0|1]
                                   [--devices 100] [--rate R] [--triggers]

Without ``--rate`` every packet is encoded first and then written with ``sendall`` in
chunks: the socket takes several hundred thousand QoS 0 messages/s, so the broker and
the subscriber are what a row measures, never the publisher. With ``--rate`` packets are
encoded as they are due and written at R messages/s. At QoS 1 it counts the broker's PUBACKs and
ends when all N are acknowledged.

Messages, for i = 0 … N-1 and device ``bench-NNNN`` = i mod devices:

- ``value``: ``bench/bench-NNNN/temperature`` → ``20.00`` … ``29.99``;
- ``json``: ``zigbee2mqtt/bench-NNNN`` → a Zigbee2MQTT-like state with 5 numeric fields.

With ``--triggers`` (value only) one message every 20 ms goes to a trigger device
``trig-00`` … ``trig-49`` instead, in turn, alternately hot and cool (``21``): each
trigger device turns hot every 2 s. A hot value is 100 + the number of hot messages
before it, so each names its reading; the wall-clock send time of each is reported, for
latency measured by another process on the same clock.

Prints one JSON object: ``start`` and ``end`` (wall clock, s), ``sent``, ``acked``
(QoS 1) and ``hot`` (``[[device, value, time], …]``).
"""

from __future__ import annotations

import argparse
import json
import socket
import threading
import time
from collections.abc import Iterator

DEVICES = 100
TRIGGER_DEVICES = 50
TRIGGER_PERIOD = 0.02  # s between two trigger messages
CHUNK = 1000  # packets per sendall in a burst
TICK = 0.001  # s, the shortest pause of a paced publisher
JSON_FIELDS = ("temperature", "humidity", "pressure", "battery", "linkquality")

Hot = tuple[str, int]  # a hot trigger message: device, value
Message = tuple[str, bytes, Hot | None]  # topic, payload


def _string(text: str) -> bytes:
    data = text.encode()
    return len(data).to_bytes(2, "big") + data


def _remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def connect_packet(client_id: str) -> bytes:
    # protocol "MQTT" level 4 (3.1.1), clean session, keepalive 0 (no PINGREQ needed)
    body = _string("MQTT") + bytes([4, 0x02, 0, 0]) + _string(client_id)
    return b"\x10" + _remaining_length(len(body)) + body


def publish_packet(topic: str, payload: bytes, qos: int, mid: int) -> bytes:
    body = _string(topic) + (mid.to_bytes(2, "big") if qos else b"") + payload
    return bytes([0x30 | qos << 1]) + _remaining_length(len(body)) + body


def value_message(i: int, devices: int) -> tuple[str, bytes]:
    return f"bench/bench-{i % devices:04d}/temperature", f"{20 + (i % 1000) / 100:.2f}".encode()


def json_message(i: int, devices: int) -> tuple[str, bytes]:
    state = {
        "temperature": 20 + (i % 1000) / 100,
        "humidity": 40 + (i % 500) / 10,
        "pressure": 1000 + (i % 300) / 10,
        "battery": 50 + i % 50,
        "linkquality": 60 + i % 190,
    }
    return f"zigbee2mqtt/bench-{i % devices:04d}", json.dumps(state).encode()


class Triggers:
    """Which message indexes go to a trigger device, and with which value."""

    def __init__(self, rate: float) -> None:
        self.every = max(1, round(rate * TRIGGER_PERIOD))

    def at(self, i: int) -> tuple[str, int] | None:
        if i % self.every != self.every // 2:
            return None
        turn = i // self.every
        rounds, k = divmod(turn, TRIGGER_DEVICES)
        hot_before = (rounds + 1) // 2 * TRIGGER_DEVICES + (k if rounds % 2 == 0 else 0)
        return f"trig-{k:02d}", 100 + hot_before if rounds % 2 == 0 else 21


class Publisher:
    def __init__(self, port: int, qos: int) -> None:
        self.qos = qos
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(connect_packet(f"bench-pub-{time.time_ns()}"))
        connack = self.sock.recv(4)
        if connack[:2] != b"\x20\x02" or connack[3:4] != b"\x00":
            raise SystemExit(f"broker refused the publisher: {connack!r}")
        self.acked = 0
        self._acks_done = threading.Event()
        self._expected = 0

    def expect_acks(self, count: int) -> None:
        self._expected = count
        if self.qos:
            threading.Thread(target=self._read_acks, daemon=True).start()

    def _read_acks(self) -> None:
        received = 0
        while received < 4 * self._expected:  # a PUBACK is 4 bytes; nothing else comes
            data = self.sock.recv(65536)
            if not data:
                break
            received += len(data)
            self.acked = received // 4
        self._acks_done.set()

    def wait_acks(self, timeout: float) -> None:
        if self.qos:
            self._acks_done.wait(timeout)

    def close(self) -> None:
        self.sock.sendall(b"\xe0\x00")  # DISCONNECT
        self.sock.close()


def messages(kind: str, count: int, devices: int, triggers: Triggers | None) -> Iterator[Message]:
    make = value_message if kind == "value" else json_message
    for i in range(count):
        trig = triggers.at(i) if triggers else None
        if trig is None:
            yield (*make(i, devices), None)
        else:
            device, value = trig
            yield f"bench/{device}/temperature", str(value).encode(), trig if value > 50 else None


def encode_chunks(stream: Iterator[Message], qos: int) -> list[bytes]:
    """Every packet of a burst, encoded before the clock starts, CHUNK per write."""
    packets = [
        publish_packet(topic, payload, qos, i % 65535 + 1)
        for i, (topic, payload, _) in enumerate(stream)
    ]
    return [b"".join(packets[i : i + CHUNK]) for i in range(0, len(packets), CHUNK)]


def paced(
    pub: Publisher, stream: Iterator[Message], rate: float, start: float
) -> list[tuple[str, int, float]]:
    """Message i written at ``start + i / rate`` or soon after; (device, value, time
    written) of each hot message."""
    hot: list[tuple[str, int, float]] = []
    chunk: list[bytes] = []
    hot_in_chunk: list[Hot] = []
    for i, (topic, payload, trig) in enumerate(stream):
        chunk.append(publish_packet(topic, payload, pub.qos, i % 65535 + 1))
        if trig:
            hot_in_chunk.append(trig)
        next_due = start + (i + 1) / rate
        if time.time() < next_due:
            now = time.time()
            pub.sock.sendall(b"".join(chunk))
            hot += [(device, value, now) for device, value in hot_in_chunk]
            chunk, hot_in_chunk = [], []
            # At least a tick: at thousands of messages/s one write per message would
            # cost the publisher more CPU than the packets themselves.
            time.sleep(max(next_due - time.time(), TICK))
    now = time.time()
    pub.sock.sendall(b"".join(chunk))
    return hot + [(device, value, now) for device, value in hot_in_chunk]


def run(args: argparse.Namespace) -> dict[str, object]:
    pub = Publisher(args.port, args.qos)
    pub.expect_acks(args.count)
    triggers = Triggers(args.rate) if args.triggers and args.rate else None
    stream = messages(args.kind, args.count, args.devices, triggers)
    hot: list[tuple[str, int, float]] = []
    if args.rate:
        start = time.time()
        hot = paced(pub, stream, args.rate, start)
    else:
        chunks = encode_chunks(stream, args.qos)
        start = time.time()
        for chunk in chunks:
            pub.sock.sendall(chunk)
    pub.wait_acks(timeout=600)
    end = time.time()
    pub.close()
    return {"start": start, "end": end, "sent": args.count, "acked": pub.acked, "hot": hot}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--kind", choices=("value", "json"), default="value")
    parser.add_argument("--qos", type=int, choices=(0, 1), default=0)
    parser.add_argument("--devices", type=int, default=DEVICES)
    parser.add_argument("--rate", type=float, help="messages/s (default: as fast as possible)")
    parser.add_argument("--triggers", action="store_true", help="latency triggers (needs --rate)")
    print(json.dumps(run(parser.parse_args())), flush=True)


if __name__ == "__main__":
    main()
