"""The MQTT source: the broker's messages, acknowledged once their readings are safe.

The connection is the gateway's own MQTT 5 client on asyncio
(:mod:`gateway.mqtt.receiver`, packets in :mod:`gateway.mqtt.wire`), not paho:
it reads every complete packet of a socket read in one pass and hands them to
the pipeline together, on the event loop's thread, so no message crosses a
thread. paho reads a packet's header a byte at a time, handles one packet per
``select`` and decodes every MQTT 5 property in Python: counting QoS 0 messages
on the same broker (``benchmarks/receive.py``), this client received 1.3–2.3
times as many per second as a raw paho MQTT 3.1.1 subscriber, for a quarter of
its CPU (paho over MQTT 5 received 0.6–0.9 times as many). MQTT 5 is needed: 3.1.1
has no Receive Maximum (the broker would hold us to its default of 20
unacknowledged QoS 1 messages, and messages are acknowledged only once stored)
and no session expiry.

Lifecycle: ``start(deliver, deliver_batch)`` on the event loop connects and
keeps reconnecting; on every connection the subscriptions are renewed and the
retained ``online`` status published (the will says ``offline``).
``deliver_batch`` gets each read's messages as ``(topic, payload, token)``;
``token`` is None for QoS 0, else an opaque value to hand back to :meth:`ack`
once the reading is safe. ``stop()`` publishes ``offline`` and disconnects.

The session is persistent (fixed client id, clean start off, a session expiry)
so QoS 1 messages published while the gateway is down are queued by the
broker. Tokens carry the connection's generation: after a reconnect an ack for
an old packet id is not sent on the new connection.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from gateway.config.schema import Config, MqttConfig
from gateway.health import Health
from gateway.ingest.source import Deliver, DeliverBatch, register_source
from gateway.metrics import Family, Metrics, Sample
from gateway.mqtt.receiver import Receiver

log = logging.getLogger("outpost.mqtt")

STATUS_TOPIC = "outpost/status"
STOP_TIMEOUT = 10.0  # seconds stop() waits for "offline" and the DISCONNECT

FAMILIES = (
    Family("outpost_mqtt_connected", "1 while connected to the broker"),
    Family("outpost_mqtt_unacked_messages", "QoS 1 messages received and not yet acknowledged"),
)


class MqttSource:
    """The MQTT :class:`~gateway.ingest.source.Source`: the broker's messages, acknowledged late."""

    name = "mqtt"
    families: Sequence[Family] = FAMILIES

    def __init__(
        self,
        cfg: MqttConfig,
        subscriptions: Iterable[tuple[str, int]],
        metrics: Metrics,
        *,
        receive_maximum: int = 10_000,
        status_topic: str = STATUS_TOPIC,
        on_state: Callable[[bool], None] | None = None,
    ) -> None:
        self._cfg = cfg
        self._metrics = metrics
        self._on_state = on_state
        self._connected = threading.Event()
        self._ever_connected = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing: asyncio.Task[None] | None = None
        # receive_maximum: how many unacknowledged QoS 1 messages the broker may send us.
        self._receiver = Receiver(
            cfg,
            subscriptions,
            receive_maximum=max(20, min(65535, receive_maximum)),
            status_topic=status_topic,
            on_up=self._up,
            on_down=self._down,
        )

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def samples(self) -> Iterator[Sample]:
        conn = self._receiver.connection
        unacked = conn.received - conn.acked if conn is not None else 0
        yield "outpost_mqtt_connected", (), 1.0 if self.connected else 0.0
        yield "outpost_mqtt_unacked_messages", (), float(unacked)

    def health(self) -> Health:
        return self._receiver.watch.health()

    def start(self, deliver: Deliver, deliver_batch: DeliverBatch | None = None) -> None:
        """Connect, on the running event loop; messages go to ``deliver_batch`` if given."""
        self._loop = asyncio.get_running_loop()
        self._receiver.start(deliver_batch or _one_by_one(deliver))
        log.info(
            "connecting to MQTT broker %s:%d as %s",
            self._cfg.host,
            self._cfg.port,
            self._cfg.client_id,
        )

    def wait_connected(self, timeout: float) -> bool:
        """Wait (from another thread) until the connection is up."""
        return self._connected.wait(timeout)

    def stop_receiving(self) -> None:
        """Ignore further messages: unacknowledged ones are redelivered next session."""
        self._receiver.stop_delivering()

    def stop(self) -> None:
        """Publish ``offline`` and disconnect. From another thread this waits until it is
        done; on the event loop's own thread it is started and left to finish."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        if _on_thread_of(loop):
            self._closing = loop.create_task(self._receiver.close())
        else:
            try:
                asyncio.run_coroutine_threadsafe(self._receiver.close(), loop).result(STOP_TIMEOUT)
            except concurrent.futures.TimeoutError:
                log.warning("the broker connection did not close within %g s", STOP_TIMEOUT)
        self._connected.clear()

    def ack(self, tokens: Iterable[Any]) -> None:
        self._receiver.ack(tokens)

    # the receiver's news (event loop) ------------------------------------------------------

    def _up(self, session_present: bool) -> None:
        if self._ever_connected:
            self._metrics.mqtt_reconnects.inc()
        self._ever_connected = True
        self._connected.set()
        if self._on_state is not None:
            self._on_state(True)

    def _down(self) -> None:
        self._connected.clear()
        if self._on_state is not None:
            self._on_state(False)


def _one_by_one(deliver: Deliver) -> DeliverBatch:
    def deliver_batch(messages: Sequence[tuple[str, bytes, Any]]) -> None:
        for topic, payload, token in messages:
            deliver(topic, payload, token)

    return deliver_batch


def _on_thread_of(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def _from_config(
    config: Config,
    subscriptions: Sequence[tuple[str, int]],
    metrics: Metrics,
    *,
    on_state: Callable[[bool], None] | None = None,
) -> MqttSource:
    # Room for two full batches in flight, so the broker never waits on a flush.
    receive_maximum = 2 * config.influx.batch_size + 100
    return MqttSource(
        config.mqtt, subscriptions, metrics, receive_maximum=receive_maximum, on_state=on_state
    )


register_source("mqtt", _from_config)
