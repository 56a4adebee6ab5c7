"""The ingest source against a real Mosquitto: keepalive, the persistent session, QoS 1
redelivery and acknowledgements, packet ids past 65535, the Maximum Packet Size."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

import paho.mqtt.client as mqtt

from gateway.metrics import Metrics
from gateway.mqtt.subscriber import MqttSource
from tests.mqtt.conftest import mqtt_config, running, until
from tests.services import Mosquitto


class Publisher:
    """A paho device publishing QoS 1 (each publish waits for the broker's PUBACK)."""

    def __init__(self, port: int, inflight: int = 1000) -> None:
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}"
        )
        self.client.max_inflight_messages_set(inflight)
        self.client.max_queued_messages_set(0)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def publish(self, messages: list[tuple[str, bytes]], qos: int = 1) -> None:
        # paho's own packet ids wrap at 65535 too: at most 10,000 waiting at a time.
        for start in range(0, len(messages), 10_000):
            infos = [self.client.publish(topic, payload, qos=qos)
                     for topic, payload in messages[start : start + 10_000]]  # fmt: skip
            for info in infos:
                info.wait_for_publish(60)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


async def publish(port: int, messages: list[tuple[str, bytes]], qos: int = 1) -> None:
    pub = Publisher(port)
    try:
        await asyncio.to_thread(pub.publish, messages, qos)
    finally:
        pub.close()


def pings_in(broker: Mosquitto, client_id: str) -> int:
    return broker.log_path.read_text().count(f"Received PINGREQ from {client_id}")


async def test_an_idle_connection_stays_up_for_three_keepalives_with_pings():
    with Mosquitto(extra_config=["log_type debug"]) as broker:
        cfg = mqtt_config(broker.port, keepalive="1s")
        metrics = Metrics()
        async with running(cfg, metrics=metrics) as (source, _):
            assert await asyncio.to_thread(source.wait_connected, 10)
            # Mosquitto drops a client it hears nothing from for 1.5 keepalives.
            await asyncio.sleep(3.5)
            assert source.connected
            assert pings_in(broker, cfg.client_id) >= 2
        assert metrics.registry.get_sample_value("outpost_mqtt_reconnects_total") == 0
        assert f"Client {cfg.client_id} has exceeded timeout" not in broker.log_path.read_text()


async def test_messages_published_while_away_arrive_when_the_session_resumes(mosquitto, caplog):
    cfg = mqtt_config(mosquitto.port)
    caplog.set_level(logging.INFO, logger="outpost.mqtt")
    async with running(cfg) as (source, _):
        assert await asyncio.to_thread(source.wait_connected, 10)
        await asyncio.sleep(0.3)  # the SUBACK
    assert "(session new)" in caplog.text
    away = [(f"sensors/d{i}/t", str(i).encode()) for i in range(50)]
    await publish(mosquitto.port, away)
    async with running(cfg) as (source, got):
        await until(lambda: len(got) == 50, what="the queued messages")
        assert [(t, p) for t, p, _ in got] == away  # in order
        assert all(token is not None for _, _, token in got)
        source.ack(token for _, _, token in got)
    assert "(session resumed)" in caplog.text


async def test_unacknowledged_messages_come_again_and_old_tokens_are_not_sent(mosquitto):
    cfg = mqtt_config(mosquitto.port, reconnect_min="100ms", reconnect_max="500ms")
    sent = [(f"sensors/d{i}/t", str(i).encode()) for i in range(10)]
    async with running(cfg) as (source, got):
        assert await asyncio.to_thread(source.wait_connected, 10)
        await asyncio.sleep(0.3)
        await publish(mosquitto.port, sent)
        await until(lambda: len(got) == 10, what="the first delivery")
        first = [token for _, _, token in got]

        async def reconnected(expected: int) -> list:
            got.clear()
            await asyncio.to_thread(mosquitto.restart)
            await until(lambda: len(got) >= expected, timeout=20, what="a redelivery")
            await asyncio.sleep(0.5)  # nothing more comes
            return list(got)

        second = await reconnected(10)
        assert [(t, p) for t, p, _ in second] == sent  # again, unacknowledged
        # Acknowledging them with the first connection's tokens sends nothing: they come
        # a third time. (Mosquitto keeps their packet ids, so a PUBACK would take.)
        source.ack(first)
        await asyncio.to_thread(mosquitto.wait_for_save)
        third = await reconnected(10)
        assert [(t, p) for t, p, _ in third] == sent
        source.ack(token for _, _, token in third)
        await asyncio.sleep(0.3)
        await asyncio.to_thread(mosquitto.wait_for_save)
        fourth = await reconnected(0)
        assert fourth == []


async def test_more_than_65535_qos1_messages_in_one_connection_are_all_acknowledged(mosquitto):
    total = 70_000
    cfg = mqtt_config(mosquitto.port)
    metrics = Metrics()
    got = 0
    source = MqttSource(cfg, [("sensors/#", 1)], metrics, receive_maximum=200)

    def deliver(topic: str, payload: bytes, token: object) -> None:
        nonlocal got
        got += 1
        source.ack([token])  # at once: with 200 in flight, a wrong ack stalls the stream

    source.start(deliver)
    try:
        assert await asyncio.to_thread(source.wait_connected, 10)
        await asyncio.sleep(0.3)
        await publish(mosquitto.port, [(f"sensors/d{i % 10}/t", b"1") for i in range(total)])
        await until(lambda: got >= total, timeout=120, what=f"{total} messages")
        samples = {name: value for name, _, value in source.samples()}
        assert samples["outpost_mqtt_unacked_messages"] == 0
    finally:
        await asyncio.to_thread(source.stop)
    assert got == total
    assert metrics.registry.get_sample_value("outpost_mqtt_reconnects_total") == 0
    # Every PUBACK took: the resumed session has nothing left to send.
    async with running(cfg) as (_, again):
        await asyncio.sleep(1.5)
        assert again == []


async def test_a_message_above_our_maximum_packet_size_is_not_sent_to_us(mosquitto):
    cfg = mqtt_config(mosquitto.port, max_packet_size="8KiB")
    async with running(cfg) as (source, got):
        assert await asyncio.to_thread(source.wait_connected, 10)
        await asyncio.sleep(0.3)
        await publish(
            mosquitto.port,
            [("sensors/big/t", b"x" * 9000), ("sensors/small/t", b"1"), ("sensors/fits/t",
             b"y" * 8000)],
        )  # fmt: skip
        await until(lambda: len(got) == 2, what="the messages that fit")
        await asyncio.sleep(0.5)
        sizes = [(t, len(p)) for t, p, _ in got]
        assert sizes == [("sensors/small/t", 1), ("sensors/fits/t", 8000)]
        assert source.connected


async def test_a_large_message_arriving_in_many_reads_is_whole(mosquitto):
    big = bytes(range(256)) * (5 * 4096)  # 5 MiB
    cfg = mqtt_config(mosquitto.port)
    async with running(cfg) as (source, got):
        assert await asyncio.to_thread(source.wait_connected, 10)
        await asyncio.sleep(0.3)
        started = time.monotonic()
        await publish(mosquitto.port, [("sensors/big/t", big), ("sensors/after/t", b"2")])
        await until(lambda: len(got) == 2, timeout=30, what="the big message")
        assert got[0][1] == big and got[1][1] == b"2"
        assert time.monotonic() - started < 20
