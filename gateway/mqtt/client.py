"""Making MQTT clients the gateway's way: credentials, TLS, reconnect delays, no Nagle.

The link that carries commands and alerts and the test probes are paho clients
built here; the ingest connection (:mod:`gateway.mqtt.receiver`) is the
gateway's own and takes its TLS settings from :func:`tls_context` too, so both
verify the broker the same way.
"""

from __future__ import annotations

import logging
import socket
import ssl

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.config.schema import MqttConfig

log = logging.getLogger("outpost.mqtt")


class Client(mqtt.Client):
    """paho's client, keeping why the last connection attempt failed.

    paho retries a failed attempt (refused, DNS, TLS) by itself and tells
    ``on_connect_fail`` only *that* it failed; the reason is here, in
    :attr:`connect_error`, when that callback runs.
    """

    connect_error: OSError | None = None

    def reconnect(self) -> MQTTErrorCode:
        try:
            result = super().reconnect()
        except OSError as exc:
            self.connect_error = exc
            raise
        self.connect_error = None
        return result


def tls_context(cfg: MqttConfig) -> ssl.SSLContext | None:
    """The TLS settings of ``cfg`` (None without ``tls:``): the broker's certificate is
    verified against ``ca`` (else the system's CAs) and its name checked unless
    ``insecure``; ``cert`` and ``key`` are the client's own, for mutual TLS."""
    if cfg.tls is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cfg.tls.ca)
    if cfg.tls.cert:
        context.load_cert_chain(cfg.tls.cert, cfg.tls.key)
    if cfg.tls.insecure:
        log.warning(
            "TLS hostname verification is OFF (mqtt.tls.insecure): anyone on the "
            "network path can impersonate the broker"
        )
        context.check_hostname = False
    return context


def reconnect_delays(cfg: MqttConfig) -> tuple[int, int]:
    """paho's shortest and longest wait between attempts (whole seconds, at least 1)."""
    return max(1, round(cfg.reconnect_min)), max(1, round(cfg.reconnect_max))


def make_client(cfg: MqttConfig, client_id: str, *, manual_ack: bool = False) -> Client:
    """A paho client with the credentials and TLS settings of ``cfg`` (no connection yet)."""
    client = Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5,
        manual_ack=manual_ack,
    )
    if cfg.username:
        password = cfg.password.get_secret_value() if cfg.password else None
        client.username_pw_set(cfg.username, password)
    context = tls_context(cfg)
    if context is not None:
        client.tls_set_context(context)  # paho reads check_hostname from the context
    shortest, longest = reconnect_delays(cfg)
    client.reconnect_delay_set(min_delay=shortest, max_delay=longest)
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
