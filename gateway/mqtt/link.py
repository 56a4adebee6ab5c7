"""The gateway's second MQTT connection: commands out, acknowledgements and status in.

Readings arrive on the ingest connection (manual acks, tuned for volume); what
the gateway *says* — alerts, device commands — and the low-volume topics it
listens to for answers (command acknowledgements, device availability) use
this one, so a flood of readings never delays a command. paho-mqtt runs it in
its own thread; received messages are handed to the event loop one by one
(there are few). The session is persistent (``<client_id>-link``, clean start
off), so QoS 1 commands and acknowledgements survive a reconnect: paho resends
unacknowledged outbound messages, and the broker keeps what arrived for us.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from gateway.config.schema import MqttConfig
from gateway.health import Health
from gateway.mqtt.client import connect_persistent, make_client
from gateway.mqtt.watch import ConnectionWatch

Handler = Callable[[str, bytes], None]


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
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    def start(self) -> None:
        connect_persistent(self.client, self._cfg)

    def health(self) -> Health:
        return self._watch.health()

    def stop(self) -> None:
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
        self.connected.set()

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
