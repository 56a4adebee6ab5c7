"""Small synchronous MQTT helpers for the security tests (no background threads).

:func:`try_connect` runs the gateway's own client factory
(:func:`gateway.mqtt.client.make_client`) to the CONNACK and says what happened.
:class:`Peer` is a logged-in device or watcher driven by explicit ``pump`` calls, so
a TLS or protocol error surfaces here instead of in a thread.
"""

from __future__ import annotations

import gc
import ssl
import time
import uuid
import warnings
from collections.abc import Iterable

import paho.mqtt.client as mqtt

from gateway.config.schema import MqttConfig
from gateway.mqtt.client import make_client


def try_connect(cfg: MqttConfig, timeout: float = 5.0) -> str:
    """``"connected"``, or ``"tls: …"``, ``"refused: …"``, ``"lost: …"``, ``"timeout"``."""
    client = make_client(cfg, f"sec-{uuid.uuid4().hex[:8]}")
    result: list[str] = []
    client.on_connect = lambda c, u, f, reason, p: result.append(
        f"refused: {reason}" if reason.is_failure else "connected")
    failure = None
    # paho does not close a socket whose TLS handshake failed: collect it here, where its
    # ResourceWarning is expected, not at some later test's garbage collection.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            client.connect(cfg.host, cfg.port, keepalive=10)
        except (ssl.SSLError, OSError) as exc:
            failure = f"tls: {exc}"
        if failure is not None:
            del client
            gc.collect()
            return failure
    try:
        deadline = time.monotonic() + timeout
        while not result and time.monotonic() < deadline:
            rc = client.loop(0.05)
            if rc != mqtt.MQTT_ERR_SUCCESS:  # a refusing CONNACK also ends the loop
                return result[0] if result else f"lost: {mqtt.error_string(rc)}"
        return result[0] if result else "timeout"
    finally:
        client.disconnect()


class Peer:
    """A paho client with a login; ``pump`` runs its network loop in the calling thread."""

    def __init__(self, port: int, username: str | None, password: str | None = None,
                 subscribe: Iterable[str] = ()) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.refused: str | None = None
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"sec-{username}-{uuid.uuid4().hex[:6]}")
        if username is not None:
            self.client.username_pw_set(username, password)
        self._connack: list[bool] = []
        self._subacks = 0
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda c, u, m: self.messages.append((m.topic, m.payload))
        self.client.on_subscribe = self._on_subscribe
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.pump_until(lambda: bool(self._connack))
        filters = list(subscribe)
        if filters and self.connected:
            self.client.subscribe([(f, 1) for f in filters])
            self.pump_until(lambda: self._subacks > 0)

    @property
    def connected(self) -> bool:
        return bool(self._connack and self._connack[0])

    def _on_connect(self, c: mqtt.Client, u: object, f: object, reason: mqtt.ReasonCode,
                    p: object) -> None:
        if reason.is_failure:
            self.refused = str(reason)
        self._connack.append(not reason.is_failure)

    def _on_subscribe(self, *args: object) -> None:
        self._subacks += 1

    def pump_until(self, done: object, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if done():  # type: ignore[operator]
                return True
            if self.client.loop(0.02) != mqtt.MQTT_ERR_SUCCESS:
                return bool(done())  # type: ignore[operator]
        return bool(done())  # type: ignore[operator]

    def publish(self, topic: str, payload: str | bytes, qos: int = 1) -> None:
        info = self.client.publish(topic, payload, qos=qos)
        self.pump_until(info.is_published)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop(0.01)

    def __enter__(self) -> Peer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def pump_all(peers: Iterable[Peer], until: object, timeout: float = 5.0) -> bool:
    """Run several peers' loops in turn until ``until()`` is true."""
    peers = list(peers)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if until():  # type: ignore[operator]
            return True
        for peer in peers:
            peer.client.loop(0.01)
    return bool(until())  # type: ignore[operator]
