"""The ingest connection: paho-mqtt with manual acknowledgements.

Why paho and not aiomqtt here: a QoS 1 message may be acknowledged to the
broker only once its reading is safe (DESIGN.md §7), and only paho exposes
that (``manual_ack=True`` + ``Client.ack``). paho also measured about 1.6x
aiomqtt's receive rate on this hardware (DESIGN.md §10).

Lifecycle: ``start(deliver)`` connects in paho's network thread and keeps
reconnecting with capped exponential backoff (paho's ``reconnect_delay_set``);
on every (re)connection the subscriptions are renewed. The pipeline's
``deliver`` is called on paho's thread with ``(topic, payload, token)``;
``token`` is None for QoS 0, else an opaque value to hand back to :meth:`ack`
once the reading is safe. ``stop()`` publishes ``offline`` and disconnects.

The session is persistent (fixed client id, clean start off, a session expiry)
so QoS 1 messages published while the gateway is down are queued by the
broker. Tokens carry the connection's generation: after a reconnect the broker
redelivers unacknowledged messages under new packet ids, so an ack for an old
id must not be sent on the new connection (it could acknowledge a different
message).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from gateway.config.schema import Config, MqttConfig
from gateway.health import Health
from gateway.ingest.source import Deliver, register_source
from gateway.metrics import Family, Metrics, Sample
from gateway.mqtt.client import connect_persistent, make_client
from gateway.mqtt.watch import ConnectionWatch

log = logging.getLogger("outpost.mqtt")

STATUS_TOPIC = "outpost/status"

Token = tuple[int, int, int]  # (connection generation, packet id, qos)

FAMILIES = (
    Family("outpost_mqtt_connected", "1 while connected to the broker"),
    Family("outpost_mqtt_unacked_messages", "QoS 1 messages received and not yet acknowledged"),
)


class MqttSource:
    """The MQTT :class:`~gateway.ingest.source.Source`: the broker's messages, acknowledged late."""

    name = "mqtt"

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
        self._subscriptions = list(subscriptions)
        self._deliver: Deliver = _ignore
        self._metrics = metrics
        self._receive_maximum = max(20, min(65535, receive_maximum))
        self._status_topic = status_topic
        self._on_state = on_state
        self._generation = 0
        self._connected = threading.Event()
        self._ever_connected = False
        # QoS 1 messages of this connection: received (paho's thread) and acknowledged
        # (the event loop), each counter written by one thread only.
        self._received = self._received_base = 0
        self._acked = self._acked_base = 0
        self._watch = ConnectionWatch(cfg, "ingest")
        self.client = make_client(cfg, cfg.client_id, manual_ack=True)
        self.client.will_set(status_topic, "offline", qos=1, retain=True)
        self.client.on_connect = self._handle_connect
        self._watch.attach(self.client)
        self.client.on_disconnect = self._handle_disconnect
        self.client.on_message = self._handle_message

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    families = FAMILIES

    def samples(self) -> Iterable[Sample]:
        unacked = (self._received - self._received_base) - (self._acked - self._acked_base)
        yield "outpost_mqtt_connected", (), 1.0 if self.connected else 0.0
        yield "outpost_mqtt_unacked_messages", (), float(max(0, unacked))

    def health(self) -> Health:
        return self._watch.health()

    def start(self, deliver: Deliver) -> None:
        self._deliver = deliver
        # receive_maximum: how many unacknowledged QoS 1 messages the broker may send us.
        connect_persistent(self.client, self._cfg, receive_maximum=self._receive_maximum)
        log.info(
            "connecting to MQTT broker %s:%d as %s",
            self._cfg.host,
            self._cfg.port,
            self._cfg.client_id,
        )

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def stop_receiving(self) -> None:
        """Ignore further messages: unacknowledged ones are redelivered next session."""
        self._deliver = _ignore

    def stop(self) -> None:
        try:
            if self.connected:
                info = self.client.publish(self._status_topic, "offline", qos=1, retain=True)
                info.wait_for_publish(timeout=2.0)
        except (RuntimeError, ValueError):
            pass
        self.client.disconnect()
        self.client.loop_stop()
        self._connected.clear()

    def ack(self, tokens: Iterable[Token]) -> None:
        generation = self._generation
        client = self.client
        acked = 0
        for gen, mid, qos in tokens:
            if gen == generation:
                client.ack(mid, qos)
                acked += 1
        self._acked += acked

    # paho callbacks (network thread) ------------------------------------------------

    def _handle_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason: mqtt.ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            self._watch.refused(reason)
            return
        self._watch.connected(client)
        self._generation += 1
        # Unacknowledged messages of the last connection come again under new ids.
        self._received_base, self._acked_base = self._received, self._acked
        if self._ever_connected:
            self._metrics.mqtt_reconnects.inc()
        self._ever_connected = True
        options = [(topic, SubscribeOptions(qos=qos)) for topic, qos in self._subscriptions]
        if options:
            client.subscribe(options)
        client.publish(self._status_topic, "online", qos=1, retain=True)
        self._connected.set()
        if self._on_state is not None:
            self._on_state(True)
        log.info(
            "connected to %s:%d (session %s); subscribed to %s",
            self._cfg.host,
            self._cfg.port,
            "resumed" if flags.session_present else "new",
            ", ".join(t for t, _ in self._subscriptions),
        )

    def _handle_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.DisconnectFlags,
        reason: mqtt.ReasonCode,
        properties: Properties | None,
    ) -> None:
        was = self._connected.is_set()
        self._connected.clear()
        if was and self._on_state is not None:
            self._on_state(False)
        self._watch.closed(reason, was_connected=was)

    def _handle_message(
        self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage
    ) -> None:
        qos = message.qos
        token = None
        if qos:
            token = (self._generation, message.mid, qos)
            self._received += 1
        self._deliver(topic_of(message), message.payload, token)


def topic_of(message: mqtt.MQTTMessage) -> str:
    """The message's topic; bytes that are not UTF-8 become lone surrogates.

    Mosquitto refuses such topics, but a broker that does not check would make paho's
    ``message.topic`` raise on the network thread, which would stop receiving. The
    surrogates make the pipeline refuse the message instead (``invalid_text``).
    """
    try:
        return message.topic
    except UnicodeDecodeError:
        raw: bytes = message._topic  # paho keeps the topic as received; .topic decodes it
        return raw.decode("utf-8", "surrogateescape")


def _ignore(topic: str, payload: bytes, token: Token | None) -> None:
    return None


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
