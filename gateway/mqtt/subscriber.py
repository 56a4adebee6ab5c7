"""The ingest connection: paho-mqtt with manual acknowledgements.

Why paho and not aiomqtt here: a QoS 1 message may be acknowledged to the
broker only once its reading is safe (DESIGN.md §7), and only paho exposes
that (``manual_ack=True`` + ``Client.ack``). paho also measured about 1.6x
aiomqtt's receive rate on this hardware (DESIGN.md §10).

Lifecycle: ``start()`` connects in paho's network thread and keeps
reconnecting with capped exponential backoff (paho's ``reconnect_delay_set``);
on every (re)connection the subscriptions are renewed. ``on_message`` is
called on paho's thread with ``(topic, payload, token)``; ``token`` is None
for QoS 0, else an opaque value to hand back to :meth:`ack` once the reading
is safe. ``stop()`` publishes ``offline`` and disconnects.

The session is persistent (fixed client id, clean start off, a session expiry)
so QoS 1 messages published while the gateway is down are queued by the
broker. Tokens carry the connection's generation: after a reconnect the broker
redelivers unacknowledged messages under new packet ids, so an ack for an old
id must not be sent on the new connection (it could acknowledge a different
message).
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from collections.abc import Callable, Iterable

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from gateway.config.schema import MqttConfig
from gateway.metrics import Metrics

log = logging.getLogger("outpost.mqtt")

STATUS_TOPIC = "outpost/status"

Token = tuple[int, int, int]  # (connection generation, packet id, qos)
OnMessage = Callable[[str, bytes, "Token | None"], None]


def make_client(cfg: MqttConfig, client_id: str, *, manual_ack: bool = False) -> mqtt.Client:
    """A paho client with the credentials and TLS settings of ``cfg`` (no connection yet)."""
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5,
        manual_ack=manual_ack,
    )
    if cfg.username:
        password = cfg.password.get_secret_value() if cfg.password else None
        client.username_pw_set(cfg.username, password)
    if cfg.tls is not None:
        client.tls_set(
            ca_certs=cfg.tls.ca,
            certfile=cfg.tls.cert,
            keyfile=cfg.tls.key,
            cert_reqs=ssl.CERT_REQUIRED,
        )
        if cfg.tls.insecure:
            log.warning(
                "TLS hostname verification is OFF (mqtt.tls.insecure): anyone on the "
                "network path can impersonate the broker"
            )
            client.tls_insecure_set(True)
    client.reconnect_delay_set(
        min_delay=max(1, round(cfg.reconnect_min)), max_delay=max(1, round(cfg.reconnect_max))
    )
    client.on_socket_open = _no_delay
    return client


def connect_persistent(
    client: mqtt.Client, cfg: MqttConfig, receive_maximum: int | None = None
) -> None:
    """Connect in paho's own thread with a persistent session (clean start off).

    The broker keeps our subscriptions and queues QoS 1 messages for
    ``session_expiry`` while we are away; paho reconnects by itself.
    """
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = int(cfg.session_expiry)
    if receive_maximum is not None:
        props.ReceiveMaximum = receive_maximum
    client.connect_async(
        cfg.host, cfg.port, keepalive=int(cfg.keepalive), clean_start=False, properties=props
    )
    client.loop_start()


def _no_delay(client: mqtt.Client, userdata: object, sock: object) -> None:
    # Nagle's algorithm holds a small packet back until the previous one is acknowledged
    # (about 40 ms with delayed ACKs): a command or PUBACK must go out at once.
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class MqttIngest:
    def __init__(
        self,
        cfg: MqttConfig,
        subscriptions: Iterable[tuple[str, int]],
        on_message: OnMessage,
        metrics: Metrics,
        *,
        receive_maximum: int = 10_000,
        status_topic: str = STATUS_TOPIC,
        on_state: Callable[[bool], None] | None = None,
    ) -> None:
        self._cfg = cfg
        self._subscriptions = list(subscriptions)
        self._on_message = on_message
        self._metrics = metrics
        self._receive_maximum = max(20, min(65535, receive_maximum))
        self._status_topic = status_topic
        self._on_state = on_state
        self._generation = 0
        self._connected = threading.Event()
        self._ever_connected = False
        self.client = make_client(cfg, cfg.client_id, manual_ack=True)
        self.client.will_set(status_topic, "offline", qos=1, retain=True)
        self.client.on_connect = self._handle_connect
        self.client.on_disconnect = self._handle_disconnect
        self.client.on_message = self._handle_message

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def start(self) -> None:
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
        self._on_message = _ignore

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
        self._metrics.mqtt_connected.set(0)

    def ack(self, tokens: Iterable[Token]) -> None:
        generation = self._generation
        client = self.client
        for gen, mid, qos in tokens:
            if gen == generation:
                client.ack(mid, qos)

    def publish(self, topic: str, payload: bytes | str, qos: int = 0, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=qos, retain=retain)

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
            log.error("broker refused the connection: %s", reason)
            return
        self._generation += 1
        if self._ever_connected:
            self._metrics.mqtt_reconnects.inc()
        self._ever_connected = True
        options = [(topic, SubscribeOptions(qos=qos)) for topic, qos in self._subscriptions]
        if options:
            client.subscribe(options)
        client.publish(self._status_topic, "online", qos=1, retain=True)
        self._metrics.mqtt_connected.set(1)
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
        self._metrics.mqtt_connected.set(0)
        if was and self._on_state is not None:
            self._on_state(False)
        if was and reason.is_failure:
            log.warning("lost the broker connection (%s); reconnecting", reason)

    def _handle_message(
        self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage
    ) -> None:
        qos = message.qos
        token = (self._generation, message.mid, qos) if qos else None
        self._on_message(message.topic, message.payload, token)


def _ignore(topic: str, payload: bytes, token: Token | None) -> None:
    return None
