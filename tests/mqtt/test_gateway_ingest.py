"""The gateway process on a scripted broker (tests/mqtt/fakebroker.py) and a real influxd:
PUBACKs come back in the order the PUBLISHes went out, once the readings are stored, and
a malformed packet costs a reconnect, never the process."""

from __future__ import annotations

import random
import signal
import time

from tests.gateway.harness import Device, GatewayProcess, gateway_config, write_config
from tests.mqtt.fakebroker import Connection, FakeBroker, publish, serve
from tests.mqtt.test_source_faults import pubacks


def ingest_only(client_id: str) -> bool:
    return not client_id.endswith("-link")  # the link connection is answered politely


def wait_until(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_pubacks_follow_the_publish_order_after_the_readings_are_stored(
    tmp_path, influxdb, influx_db
):
    total = 3000
    ids = random.Random(7).sample(range(1, 65536), total)  # the broker picks any free id

    async def script(conn: Connection) -> None:
        await conn.handshake()
        for start in range(0, total, 700):  # several chunks, a packet cut at each edge
            conn.send(b"".join(
                publish(f"sensors/gh-{i % 10}/temperature", str(i).encode(), 1, ids[i])
                for i in range(start, min(total, start + 700))))  # fmt: skip
            await conn.writer.drain()
        await serve(conn)

    with FakeBroker(script, wants=ingest_only) as broker:
        config = gateway_config(broker.port, influxdb.url, influx_db)
        with GatewayProcess(write_config(tmp_path / "outpost.yaml", config)) as gateway:
            wait_until(lambda: broker.scripted(), 10, "the ingest connection")
            conn = broker.scripted()[0]
            wait_until(lambda: len(pubacks(conn)) >= total, 60, "every PUBACK")
            stored = influxdb.count(influx_db, "temperature")
            assert "protocol error" not in gateway.log()
        assert pubacks(conn) == ids
        assert stored == total


def test_the_gateway_survives_a_malformed_packet_and_stores_what_follows(
    tmp_path, influxdb, influx_db
):
    async def script(conn: Connection) -> None:
        await conn.handshake(session_present=len(broker.scripted()) > 1)
        if len(broker.scripted()) == 1:
            conn.send(b"\x30\xff\xff\xff\xff\x01")  # a Remaining Length of five bytes
        else:
            conn.send(publish("sensors/gh-1/temperature", b"21.5", 1, 1))
        await serve(conn)

    with FakeBroker(script, wants=ingest_only) as broker:
        config = gateway_config(broker.port, influxdb.url, influx_db)
        config["mqtt"].update({"reconnect_min": "100ms"})
        with GatewayProcess(write_config(tmp_path / "outpost.yaml", config)) as gateway:
            influxdb.wait_for_count(influx_db, 1, measurement="temperature", timeout=20)
            wait_until(lambda: pubacks(broker.scripted()[1]) == [1], 10, "the PUBACK")
            assert gateway.proc is not None and gateway.proc.poll() is None
            log = gateway.log()
    assert "lost the broker connection" in log
    assert "protocol error: Variable Byte Integer longer than four bytes" in log


def test_the_status_is_online_while_connected_and_offline_after_a_stop_or_a_kill(
    tmp_path, mosquitto, influxdb, influx_db
):
    config = gateway_config(mosquitto.port, influxdb.url, influx_db)
    path = write_config(tmp_path / "outpost.yaml", config)
    with Device(mosquitto.port, subscribe=["outpost/status"]) as watcher:
        gateway = GatewayProcess(path).start()
        assert [m.payload for m in watcher.collect(1)] == [b"online"]
        gateway.stop(signal.SIGKILL)  # no DISCONNECT: the broker sends the will
        [will] = watcher.collect(1)
        assert (will.payload, will.retain) == (b"offline", False)
        with GatewayProcess(path):
            assert [m.payload for m in watcher.collect(1)] == [b"online"]
        assert [m.payload for m in watcher.collect(1)] == [b"offline"]
    with Device(mosquitto.port, subscribe=["outpost/status"]) as late:
        [retained] = late.collect(1)
        assert (retained.payload, retained.retain) == (b"offline", True)


def test_a_topic_that_is_not_utf8_is_dead_lettered_and_acknowledged_not_a_reconnect(
    tmp_path, influxdb, influx_db
):
    # A broker that does not check topics forwards a device's bad bytes. Dropping the
    # connection would bring the same QoS 1 message back for ever; the message is refused.
    async def script(conn: Connection) -> None:
        await conn.handshake()
        conn.send(publish(b"sensors/\xed\xa0\x80/temperature", b"1", 1, 1))
        conn.send(publish("sensors/gh-1/temperature", b"21.5", 1, 2))
        await serve(conn)

    with FakeBroker(script, wants=ingest_only) as broker:
        config = gateway_config(broker.port, influxdb.url, influx_db)
        with GatewayProcess(write_config(tmp_path / "outpost.yaml", config)) as gateway:
            influxdb.wait_for_count(influx_db, 1, measurement="temperature", timeout=20)
            wait_until(lambda: pubacks(broker.scripted()[0]) == [1, 2], 10, "both PUBACKs")
            log = gateway.log()
        assert len(broker.scripted()) == 1  # no reconnect
    assert "protocol error" not in log
    assert "invalid_text" in log  # the dead letter's line
