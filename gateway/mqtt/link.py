"""The gateway's second MQTT connection: commands out, acknowledgements and status in.

Readings arrive on the ingest connection (manual acks, tuned for volume); what
the gateway *says* — alerts, device commands — and the low-volume topics it
listens to for answers (command acknowledgements, device availability) use
this one, so a flood of readings never delays a command. paho-mqtt runs it in
its own thread; received messages are handed to the event loop one by one
(there are few). The session is persistent (``<client_id>-link``, clean start
off), so QoS 1 commands and acknowledgements survive a reconnect: paho resends
unacknowledged outbound messages, and the broker keeps what arrived for us.

A **presence** (:meth:`MqttLink.set_presence`; the Sparkplug host STATE) makes the
connection announce itself: before every connection attempt its ``will()`` becomes
the connection's will, right after the subscriptions of each new connection its
``birth()`` is published, and before a clean disconnect its ``farewell()``; all
three retained, at QoS 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterable
from typing import Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from gateway.config.schema import MqttConfig
from gateway.health import Health
from gateway.mqtt.client import connect_persistent, make_client
from gateway.mqtt.watch import ConnectionWatch

Handler = Callable[[str, bytes], None]


class Presence(Protocol):
    """What a connection says about itself: (topic, payload) of its will, birth, farewell."""

    def will(self) -> tuple[str, bytes]: ...

    def birth(self) -> tuple[str, bytes]: ...

    def farewell(self) -> tuple[str, bytes]: ...


class MqttLink:
    def __init__(self, cfg: MqttConfig, loop: asyncio.AbstractEventLoop) -> None:
        self._cfg = cfg
        self._loop = loop
        self._subscriptions: dict[str, list[Handler]] = {}
        self._lock = threading.Lock()
        self.connected = threading.Event()
        self._watch = ConnectionWatch(cfg, "link")
        self.client = make_client(cfg, f"{cfg.client_id}-link")
        # Far more than the default 20: a burst of alerts must not wait on PUBACKs.
        self.client.max_inflight_messages_set(1000)
        self.client.on_connect = self._on_connect
        self._watch.attach(self.client)
        self._presence: Presence | None = None
        self._watch_pre_connect = self.client.on_pre_connect
        self.client.on_pre_connect = self._on_pre_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    def start(self) -> None:
        connect_persistent(self.client, self._cfg)

    def health(self) -> Health:
        return self._watch.health()

    def set_presence(self, presence: Presence) -> None:
        """Announce ``presence`` on this connection (call before :meth:`start`)."""
        self._presence = presence

    def stop(self) -> None:
        if self._presence is not None and self.connected.is_set():
            topic, payload = self._presence.farewell()
            info = self.client.publish(topic, payload, qos=1, retain=True)
            with contextlib.suppress(RuntimeError, ValueError):  # not connected any more
                info.wait_for_publish(timeout=2.0)
        self.client.disconnect()
        self.client.loop_stop()

    def publish(self, topic: str, payload: bytes | str, qos: int = 1, retain: bool = False) -> None:
        """Queue a message; with QoS 1 paho delivers it even across a reconnect."""
        self.client.publish(topic, payload, qos=qos, retain=retain)

    def subscribe(self, filters: Iterable[str], handler: Handler) -> None:
        """Call ``handler(topic, payload)`` on the event loop for messages on ``filters``."""
        new = []
        with self._lock:
            for topic_filter in filters:
                handlers = self._subscriptions.setdefault(topic_filter, [])
                if handler not in handlers:
                    handlers.append(handler)
                    new.append(topic_filter)
        if new and self.connected.is_set():
            self.client.subscribe([(f, SubscribeOptions(qos=1)) for f in new])

    def _on_connect(
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
        with self._lock:
            filters = list(self._subscriptions)
        if filters:
            client.subscribe([(f, SubscribeOptions(qos=1)) for f in filters])
        if self._presence is not None:  # after the subscriptions, on the same connection
            topic, payload = self._presence.birth()
            client.publish(topic, payload, qos=1, retain=True)
        self.connected.set()

    def _on_pre_connect(self, client: mqtt.Client, userdata: object) -> None:
        if self._watch_pre_connect is not None:
            self._watch_pre_connect(client, userdata)
        if self._presence is not None:  # a new session: a will of its own
            topic, payload = self._presence.will()
            client.will_set(topic, payload, qos=1, retain=True)

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.DisconnectFlags,
        reason: mqtt.ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._watch.closed(reason, was_connected=self.connected.is_set())
        self.connected.clear()

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        topic, payload = message.topic, message.payload
        with self._lock:
            handlers = [
                h
                for f, hs in self._subscriptions.items()
                if mqtt.topic_matches_sub(f, topic)
                for h in hs
            ]
        for handler in handlers:
            try:
                self._loop.call_soon_threadsafe(handler, topic, payload)
            except RuntimeError:  # loop closed during shutdown
                return
