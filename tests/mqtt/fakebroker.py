"""A scripted MQTT 5 broker for the tests a real Mosquitto cannot play: a malformed
Remaining Length, a PUBLISH cut short, a packet above the client's Maximum Packet
Size, packet ids of our choosing, a broker that stops answering PINGREQ.

It runs its own event loop in a thread, so both async tests (the source in the test
process) and sync tests (a gateway subprocess) use it. Each connection's CONNECT is
read first; the connection is then handed to ``script(conn)`` (an ``async`` function of
the test), or, for client ids the script does not want (the gateway's ``-link``
connection), answered politely: CONNACK, SUBACK, PUBACK, PINGRESP.

The packets are encoded here from the MQTT 5.0 specification, independently of the
gateway's own ``gateway.mqtt.wire``.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from tests.services import free_port

CONNECT, CONNACK, PUBLISH, PUBACK, SUBSCRIBE, SUBACK = 1, 2, 3, 4, 8, 9
PINGREQ, PINGRESP, DISCONNECT = 12, 13, 14


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | 0x80 if value else byte)
        if not value:
            return bytes(out)


def string(text: str | bytes) -> bytes:
    data = text.encode() if isinstance(text, str) else text
    return len(data).to_bytes(2, "big") + data


def packet(first: int, body: bytes) -> bytes:
    return bytes((first,)) + varint(len(body)) + body


def connack(session_present: bool = False, reason: int = 0, properties: bytes = b"") -> bytes:
    body = bytes((int(session_present), reason)) + varint(len(properties)) + properties
    return packet(CONNACK << 4, body)


def publish(topic: str | bytes, payload: bytes, qos: int = 0, packet_id: int = 0) -> bytes:
    body = string(topic) + (packet_id.to_bytes(2, "big") if qos else b"") + b"\x00" + payload
    return packet(PUBLISH << 4 | qos << 1, body)


@dataclass
class Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    client_id: str = ""
    keepalive: int = 0
    properties: bytes = b""
    received: list[tuple[int, int, bytes]] = field(default_factory=list)

    async def read_packet(self, timeout: float = 10.0) -> tuple[int, int, bytes]:
        """``(type, flags, body)`` of the client's next packet (recorded in ``received``)."""
        async with asyncio.timeout(timeout):
            first = (await self.reader.readexactly(1))[0]
            length, shift = 0, 0
            while True:
                byte = (await self.reader.readexactly(1))[0]
                length |= (byte & 0x7F) << shift
                shift += 7
                if not byte & 0x80:
                    break
            body = await self.reader.readexactly(length)
        found = (first >> 4, first & 0x0F, body)
        self.received.append(found)
        return found

    async def expect(self, kind: int, timeout: float = 10.0) -> bytes:
        """The body of the next packet of ``kind``, answering PINGREQs on the way."""
        while True:
            got, _, body = await self.read_packet(timeout)
            if got == kind:
                return body
            if got == PINGREQ:
                self.send(bytes((PINGRESP << 4, 0)))
                continue
            raise AssertionError(f"expected packet type {kind}, got {got}")

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def handshake(self, session_present: bool = False, properties: bytes = b"") -> None:
        """CONNACK, then the SUBACK and the PUBACK of the ``online`` status the client sends."""
        self.send(connack(session_present, properties=properties))
        for _ in range(2):
            kind, flags, body = await self.read_packet()
            if kind == SUBSCRIBE:
                filters = _count_filters(body)
                self.send(packet(SUBACK << 4, body[:2] + b"\x00" + bytes([1] * filters)))
            elif kind == PUBLISH and flags & 0x06:
                topic_end = 2 + int.from_bytes(body[:2], "big")
                self.send(packet(PUBACK << 4, body[topic_end : topic_end + 2]))

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


def _count_filters(body: bytes) -> int:
    at = 2 + 1 + body[2]  # packet id, property length (short), properties
    count = 0
    while at < len(body):
        at += 2 + int.from_bytes(body[at : at + 2], "big") + 1
        count += 1
    return count


Script = Callable[[Connection], Awaitable[None]]


class FakeBroker:
    """``FakeBroker(script, wants=lambda client_id: ...)`` listening on ``.port``."""

    def __init__(self, script: Script, wants: Callable[[str], bool] = lambda cid: True) -> None:
        self.port = free_port()
        self.connections: list[Connection] = []
        self._script = script
        self._wants = wants
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._thread = threading.Thread(target=self._run, name="fake-broker", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the fake broker did not start")

    def scripted(self) -> list[Connection]:
        """The connections the script was given, in order."""
        return [c for c in self.connections if self._wants(c.client_id)]

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._accept, "127.0.0.1", self.port)
        )
        self._ready.set()
        self._loop.run_forever()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        conn = Connection(reader, writer)
        try:
            kind, _, body = await conn.read_packet()
            assert kind == CONNECT, kind
            _read_connect(conn, body)
            self.connections.append(conn)
            if self._wants(conn.client_id):
                await self._script(conn)
            else:
                await _polite(conn)
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    def drop(self, conn: Connection) -> None:
        """Close ``conn`` from the broker's side."""
        asyncio.run_coroutine_threadsafe(conn.close(), self._loop).result(10)

    def send(self, conn: Connection, data: bytes) -> None:
        self._loop.call_soon_threadsafe(conn.send, data)

    def close(self) -> None:
        async def stop() -> None:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> FakeBroker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_connect(conn: Connection, body: bytes) -> None:
    at = 2 + int.from_bytes(body[:2], "big")  # protocol name
    assert body[at] == 5, f"protocol level {body[at]}"
    conn.keepalive = int.from_bytes(body[at + 2 : at + 4], "big")
    at += 4
    length = body[at]  # the tests' property lists are shorter than 128 bytes
    conn.properties = body[at + 1 : at + 1 + length]
    at += 1 + length
    conn.client_id = body[at + 2 : at + 2 + int.from_bytes(body[at : at + 2], "big")].decode()


async def _polite(conn: Connection) -> None:
    conn.send(connack())
    await serve(conn)


async def serve(conn: Connection, pings: bool = True) -> None:
    """What a broker answers a client that only subscribes, publishes and pings (``pings``
    False: PINGREQs go unanswered), until the client disconnects."""
    while True:
        kind, flags, body = await conn.read_packet(timeout=3600)
        if kind == SUBSCRIBE:
            conn.send(packet(SUBACK << 4, body[:2] + b"\x00" + bytes([1] * _count_filters(body))))
        elif kind == PUBLISH and flags & 0x06:
            topic_end = 2 + int.from_bytes(body[:2], "big")
            conn.send(packet(PUBACK << 4, body[topic_end : topic_end + 2]))
        elif kind == PINGREQ and pings:
            conn.send(bytes((PINGRESP << 4, 0)))
        elif kind == DISCONNECT:
            return
