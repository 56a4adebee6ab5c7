"""One MQTT connection carrying one or more simulated devices.

Lifecycle (``run``): connect → publish retained ``online`` on each device's
``devices/{id}/status`` → listen (actuators' subscriptions) until ``stop`` →
publish retained ``offline`` → disconnect cleanly (a clean disconnect does not
fire the will). If the connection drops, ``run`` reconnects with capped
exponential backoff, as aiomqtt's docs advise (reconnection lives in the
application), and announces ``online`` again; samples published meanwhile are
dropped and counted, never queued: a sensor that lost its broker does not
replay old readings either.

The will: a connection made for exactly one device carries that device's will
(``offline``, retained), so a killed simulator looks like unplugged sensors.
MQTT allows one will per connection, so a link shared by many devices has
none: the trade-off is in ``simulators/README.md``.

Fault injection takes a link down on purpose: ``go_offline("will")`` cuts the
TCP connection without a DISCONNECT, so the broker publishes the will exactly
as for a device that lost power; ``go_offline("clean")`` says ``offline``
first and disconnects cleanly. Either way the link stays down (no reconnect)
until ``go_online()``, then connects and announces ``online`` again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

import aiomqtt

from simulators.payloads import STATUS_OFFLINE, STATUS_ONLINE, status_topic

log = logging.getLogger("outpost.simulator")

MessageHandler = Callable[[aiomqtt.Message], Awaitable[None]]

BACKOFF_MIN = 0.5
BACKOFF_MAX = 30.0
STATUS_TIMEOUT = 5.0
PENDING_WARN = 1000
# paho leaves Nagle's algorithm on: a sample published right after another
# packet then waits for the broker's delayed ACK (40 ms on Linux), which
# distorted pacing here and would dominate reading-to-command latencies.
NO_DELAY = ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),)


@dataclass(frozen=True)
class Broker:
    """Where to connect and as whom."""

    host: str = "localhost"
    port: int = 1883
    username: str | None = None
    password: str | None = None

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


class Link:
    """A reconnecting MQTT connection for ``devices`` (see the module docstring)."""

    def __init__(
        self,
        broker: Broker,
        client_id: str,
        devices: list[str],
        *,
        will: bool,
        max_inflight: int | None = None,
    ) -> None:
        self.broker = broker
        self.client_id = client_id
        self.devices = devices
        self.will = will and len(devices) == 1
        self.max_inflight = max_inflight
        self.connected = asyncio.Event()
        self.dropped = 0
        self._client: aiomqtt.Client | None = None
        self._handlers: dict[str, MessageHandler] = {}
        self._down = asyncio.Event()  # set while held offline by go_offline
        self._up = asyncio.Event()
        self._up.set()
        self._down_mode: Literal["will", "clean"] = "will"

    def go_offline(self, mode: Literal["will", "clean"] = "will") -> None:
        """Take the connection down until ``go_online`` (see the module docstring)."""
        self._down_mode = mode
        self._up.clear()
        self._down.set()

    def go_online(self) -> None:
        self._down.clear()
        self._up.set()

    def on(self, topic_filter: str, handler: MessageHandler) -> None:
        """Subscribe ``handler`` to ``topic_filter`` (QoS 1) on every (re)connection.

        This is the actuator hook: a simulated fan registers ``devices/fan-1/set``.
        Register before ``run``.
        """
        self._handlers[topic_filter] = handler

    async def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> bool:
        """Publish if connected; ``False`` (and counted in ``dropped``) if not."""
        client = self._client
        if client is None or not self.connected.is_set():
            self.dropped += 1
            return False
        try:
            await client.publish(topic, payload, qos=qos, retain=retain)
        except aiomqtt.MqttError:
            self.dropped += 1
            return False
        return True

    def _make_client(self) -> aiomqtt.Client:
        will = (
            aiomqtt.Will(status_topic(self.devices[0]), STATUS_OFFLINE, qos=1, retain=True)
            if self.will
            else None
        )
        client = aiomqtt.Client(
            self.broker.host,
            self.broker.port,
            username=self.broker.username,
            password=self.broker.password,
            identifier=self.client_id,
            will=will,
            clean_session=True,
            max_inflight_messages=self.max_inflight,
            socket_options=NO_DELAY,
        )
        # aiomqtt warns from 10 pending publishes on; the runner's batches are
        # concurrent on purpose (and bounded by runner.MAX_BATCH).
        client.pending_calls_threshold = PENDING_WARN
        return client

    async def run(self, stop: asyncio.Event) -> None:
        backoff = BACKOFF_MIN
        while not stop.is_set():
            if self._down.is_set():
                await _first(self._up.wait(), stop.wait())
                backoff = BACKOFF_MIN
                continue
            try:
                async with self._make_client() as client:
                    await self._session(client, stop)
                if self._down.is_set():
                    continue
                return
            except aiomqtt.MqttError as exc:
                if self._down.is_set():  # the cut we made on purpose
                    self.connected.clear()
                    self._client = None
                    continue
                if self.connected.is_set():  # a working session broke: start over quickly
                    backoff = BACKOFF_MIN
                self.connected.clear()
                self._client = None
                log.warning(
                    "%s: broker %s: %s; reconnecting in %.1f s",
                    self.client_id,
                    self.broker,
                    exc,
                    backoff,
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)

    async def _session(self, client: aiomqtt.Client, stop: asyncio.Event) -> None:
        for topic_filter in self._handlers:
            await client.subscribe(topic_filter, qos=1)
        await self._announce(client, STATUS_ONLINE)
        self._client = client
        self.connected.set()
        listener = asyncio.create_task(self._listen(client))
        waiters = {asyncio.create_task(stop.wait()), asyncio.create_task(self._down.wait())}
        try:
            await asyncio.wait({listener, *waiters}, return_when=asyncio.FIRST_COMPLETED)
            if self._down.is_set() and self._down_mode == "will" and not listener.done():
                self.connected.clear()
                self._client = None
                _cut(client)
                # paho notices the dead socket and aiomqtt ends the listener with
                # an MqttError (raised below); `run` then waits for go_online.
                await asyncio.wait({listener}, timeout=STATUS_TIMEOUT)
        finally:
            for task in waiters:
                task.cancel()
            listener.cancel()
            # Re-raises the listener's MqttError if the connection was lost.
            with contextlib.suppress(asyncio.CancelledError):
                await listener
        self.connected.clear()
        self._client = None
        await self._announce(client, STATUS_OFFLINE)

    async def _announce(self, client: aiomqtt.Client, status: bytes) -> None:
        for device in self.devices:
            await client.publish(
                status_topic(device), status, qos=1, retain=True, timeout=STATUS_TIMEOUT
            )

    async def _listen(self, client: aiomqtt.Client) -> None:
        # Iterating also notices a lost connection (MqttError), even with no
        # subscriptions: that is what makes `run` reconnect.
        async for message in client.messages:
            for topic_filter, handler in self._handlers.items():
                if message.topic.matches(topic_filter):
                    await handler(message)


def _cut(client: aiomqtt.Client) -> None:
    """Drop the TCP connection without an MQTT DISCONNECT: the broker fires the will."""
    # aiomqtt has no public way to lose a connection on purpose; its paho
    # client's socket is the one place to do it (as simulators/load.py also
    # reaches the paho client for speed).
    sock = client._client.socket()
    if isinstance(sock, socket.socket):  # plain TCP or TLS (an SSLSocket is one)
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


async def _first(*aws: Awaitable[object]) -> None:
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
