"""The ingest source against a broker that misbehaves (tests/mqtt/fakebroker.py): it
drops the connection with a logged reason and a DISCONNECT reason code, reconnects,
and goes on receiving; acknowledgements go out in order and never to the wrong
connection."""

from __future__ import annotations

import asyncio
import logging

import pytest

from tests.mqtt.conftest import mqtt_config, running, until
from tests.mqtt.fakebroker import (
    DISCONNECT,
    PINGREQ,
    PUBACK,
    Connection,
    FakeBroker,
    packet,
    publish,
    serve,
    string,
)

GOOD = publish("sensors/good/t", b"21.5")


def disconnects(conn: Connection) -> list[bytes]:
    return [body for kind, _, body in conn.received if kind == DISCONNECT]


def pubacks(conn: Connection) -> list[int]:
    return [int.from_bytes(body[:2], "big") for kind, _, body in conn.received if kind == PUBACK]


def broken_then_good(bad: bytes):
    """The first connection gets ``bad``, every later one a good message."""
    seen: list[Connection] = []

    async def script(conn: Connection) -> None:
        seen.append(conn)
        await conn.handshake()
        conn.send(bad if len(seen) == 1 else GOOD)
        await serve(conn)

    return script


@pytest.mark.parametrize(
    ("bad", "code", "logged"),
    [
        (b"\x30\xff\xff\xff\xff\x01", 0x81, "Variable Byte Integer longer than four bytes"),
        (packet(0x30, string("sensors/a/t")[:2] + b"abc"), 0x81, "PUBLISH shorter than its topic"),
        (packet(0x34, string("s/t") + b"\x00\x01\x00x"), 0x82, "QoS 2 PUBLISH"),
        (packet(0x30, b"\x00\x00\x03\x23\x00\x01x"), 0x82, "topic aliases are not allowed"),
        (b"\x30" + bytes.fromhex("a08d06"), 0x95, "exceeds the Maximum Packet Size 8192"),
        (bytes((0x90, 3, 0, 1, 0)) + bytes((0xB0, 2, 0, 1)), 0x82, "unexpected packet type 11"),
        (bytes((0x20, 3, 0, 0, 0)), 0x82, "unexpected packet type 2"),  # a second CONNACK
    ],
)
async def test_a_broken_packet_drops_the_connection_with_its_reason_then_it_reconnects(
    bad, code, logged, caplog
):
    caplog.set_level(logging.INFO, logger="outpost.mqtt")
    with FakeBroker(broken_then_good(bad)) as broker:
        cfg = mqtt_config(broker.port, reconnect_min="100ms", max_packet_size="8KiB")
        async with running(cfg) as (source, got):
            await until(lambda: len(got) == 1, what="the good message after reconnecting")
            assert got == [("sensors/good/t", b"21.5", None)]
            assert source.connected
        first = broker.scripted()[0]
        assert disconnects(first) == [bytes((code,))]
    assert f"lost the broker connection to 127.0.0.1:{broker.port} (protocol error: " in caplog.text
    assert logged in caplog.text


async def test_a_publish_cut_short_by_the_broker_is_dropped_and_the_next_connection_is_clean(
    caplog,
):
    cut = publish("sensors/cut/t", b"x" * 100)[:40]
    with FakeBroker(broken_then_good(b"")) as broker:
        cfg = mqtt_config(broker.port, reconnect_min="100ms")
        async with running(cfg) as (_, got):
            await until(lambda: len(broker.scripted()) == 1, what="the first connection")
            await asyncio.sleep(0.2)
            first = broker.scripted()[0]
            broker.send(first, cut)
            await asyncio.sleep(0.2)
            broker.drop(first)
            await until(lambda: got, what="the message on the second connection")
            assert got == [("sensors/good/t", b"21.5", None)]  # no bytes of the cut one
    assert "lost the broker connection" in caplog.text and "the broker closed it" in caplog.text


async def test_pubacks_go_out_in_order_and_never_on_a_later_connection():
    ids = [7, 3, 65535, 1, 200]

    async def script(conn: Connection) -> None:
        again = len(broker.scripted()) > 1
        await conn.handshake(session_present=again)
        for pid in ids if not again else ids[:2]:
            conn.send(publish(f"sensors/{pid}/t", b"2" if again else b"1", 1, pid))
        await serve(conn)

    with FakeBroker(script) as broker:
        cfg = mqtt_config(broker.port, reconnect_min="100ms")
        async with running(cfg) as (source, got):
            await until(lambda: len(got) == 5, what="five QoS 1 messages")
            first = broker.scripted()[0]
            old = [token for _, _, token in got]
            source.ack(old[2:])  # ids 65535, 1, 200, in the order they came
            await until(lambda: len(pubacks(first)) == 3, what="three PUBACKs")
            assert pubacks(first) == [65535, 1, 200]
            # The broker drops the connection; 7 and 3 come again with the same ids.
            got.clear()
            broker.drop(first)
            await until(lambda: len(got) == 2, what="the redelivery")
            second = broker.scripted()[1]
            source.ack(old[:2])  # the first connection's tokens for 7 and 3: nothing goes out
            await asyncio.sleep(0.5)
            assert pubacks(second) == []
            source.ack(token for _, _, token in got)
            await until(lambda: len(pubacks(second)) == 2, what="the new PUBACKs")
            assert pubacks(second) == [7, 3]


async def test_a_broker_that_stops_answering_pings_is_left_and_reconnected(caplog):
    async def script(conn: Connection) -> None:
        await conn.handshake()
        await serve(conn, pings=len(broker.scripted()) > 1)

    with FakeBroker(script) as broker:
        cfg = mqtt_config(broker.port, keepalive="1s", reconnect_min="100ms")
        async with running(cfg) as (source, _):
            await until(lambda: len(broker.scripted()) == 2, timeout=6, what="a reconnect")
            await until(lambda: source.connected, what="the second connection")
        first = broker.scripted()[0]
        assert any(kind == PINGREQ for kind, _, _ in first.received)
        assert first.keepalive == 1
    assert "no answer from the broker" in caplog.text


async def test_a_disconnect_from_the_broker_is_logged_with_its_reason(caplog):
    async def script(conn: Connection) -> None:
        await conn.handshake()
        if len(broker.scripted()) == 1:
            reason = string("another gateway took the id")
            conn.send(packet(0xE0, bytes((0x8E, len(reason) + 1, 0x1F)) + reason))
        else:
            conn.send(GOOD)
        await serve(conn)

    with FakeBroker(script) as broker:
        cfg = mqtt_config(broker.port, reconnect_min="100ms")
        async with running(cfg) as (_, got):
            await until(lambda: got, what="the message after the reconnect")
    assert (
        "the broker disconnected: Session taken over (0x8E): another gateway took the id"
        in caplog.text
    )


async def test_a_broker_that_drops_every_connection_at_once_is_not_hammered(caplog):
    async def script(conn: Connection) -> None:
        await conn.handshake()
        conn.send(packet(0xE0, bytes((0x8E, 0))))  # Session taken over, at once

    with FakeBroker(script) as broker:
        cfg = mqtt_config(broker.port, reconnect_min="100ms", reconnect_max="400ms")
        async with running(cfg):
            await asyncio.sleep(3.0)
        connections = len(broker.scripted())
    # Waits of 0.1, 0.2, 0.4, 0.4 … s (at least half each, with jitter): not one every 0.1 s.
    assert 4 <= connections <= 17, connections
    lost = caplog.text.count("lost the broker connection")
    assert lost == 3, caplog.text  # one line per backoff step, then one a minute


@pytest.mark.parametrize("server_keepalive", [1, 0])
async def test_the_brokers_server_keep_alive_replaces_ours(server_keepalive):
    async def script(conn: Connection) -> None:
        await conn.handshake(properties=bytes((0x13, 0, server_keepalive)))
        await serve(conn)

    with FakeBroker(script) as broker:
        cfg = mqtt_config(broker.port, keepalive="60s")
        async with running(cfg) as (source, _):
            await until(lambda: source.connected, what="the connection")
            await asyncio.sleep(2.5)
            assert source.connected  # 0 turns keepalive off: no ping, and no timeout either
        first = broker.scripted()[0]
        pings = sum(1 for kind, _, _ in first.received if kind == PINGREQ)
    assert len(broker.scripted()) == 1
    assert (pings >= 2) if server_keepalive else (pings == 0)
