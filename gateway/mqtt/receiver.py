"""The ingest connection to the broker: MQTT 5 on asyncio, read a whole chunk at a time.

:class:`Receiver` keeps one :class:`Connection` up: it connects (TCP or TLS),
sends CONNECT with a persistent session (fixed client id, clean start off, a
session expiry), a Receive Maximum and a Maximum Packet Size, renews the
subscriptions and publishes the retained ``online`` status; when the connection
fails or is lost it tries again with capped exponential backoff and jitter
(:class:`gateway.retry.Backoff`); each failed attempt and lost connection goes to
its :class:`~gateway.mqtt.watch.ConnectionWatch` (the reason in the log once per
backoff step, and in the status).

Everything runs on the event loop's thread. ``data_received`` cuts every
complete packet out of the chunk it is given (:func:`gateway.mqtt.wire.read_packets`)
and hands the chunk's messages to ``deliver_batch`` in one call, as
``(topic, payload, token)``: ``token`` is None at QoS 0, else a number that
:meth:`Receiver.ack` turns back into a PUBACK. Tokens carry the connection's
generation: after a reconnect the broker sends unacknowledged messages again,
and an acknowledgement meant for the old connection must not be sent on the
new one (its packet id may now name another message).

Keepalive: a PINGREQ goes out when nothing was sent for the keepalive, or
nothing was received for half of it; with nothing received for 1.5 times the
keepalive the connection is given up as half-open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from gateway.config.schema import MqttConfig
from gateway.ingest.source import DeliverBatch
from gateway.mqtt import wire
from gateway.mqtt.client import tls_context
from gateway.mqtt.watch import ConnectionWatch
from gateway.retry import Backoff

log = logging.getLogger("outpost.mqtt")

CONNECT_TIMEOUT = 10.0  # seconds for TCP, TLS and the CONNACK together
STATUS_TIMEOUT = 2.0  # seconds to wait for the broker to take the "offline" status at stop
STABLE = 10.0  # seconds a connection must last for the next loss to wait the shortest time


class Closed(Exception):
    """The broker closed the connection before it was up; ``detail`` is what was read."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class Refused(Exception):
    """The broker answered CONNECT with a failure reason code."""

    def __init__(self, code: int) -> None:
        super().__init__(wire.reason_name(code))
        self.code = code


def _ignore(messages: Sequence[tuple[str, bytes, Any]]) -> None:
    return None


def _quiet(future: asyncio.Future[Any]) -> None:
    # Nobody may be waiting any more when a connection closes under a request: take the
    # exception so asyncio does not report it as never retrieved.
    if not future.cancelled():
        future.exception()


class Connection(asyncio.Protocol):
    """One connection to the broker, from CONNECT until it is closed."""

    def __init__(
        self,
        owner: Receiver,
        generation: int,
        connect: bytes,
        keepalive: float,
        max_size: int,
    ) -> None:
        self._owner = owner
        self._loop = asyncio.get_running_loop()
        self._connect = connect
        self._max_size = max_size
        self.generation = generation
        self.token_base = generation << 16
        self.connack: asyncio.Future[wire.Connack] = self._loop.create_future()
        self.connack.add_done_callback(_quiet)
        self.closed: asyncio.Future[str] = self._loop.create_future()
        self.up = False
        self.received = 0  # QoS 1 messages received on this connection
        self.acked = 0  # … and acknowledged
        self._transport: asyncio.Transport | None = None
        self._partial = bytearray()  # the start of a packet the next chunk completes
        self._wanted = 0  # how many bytes that packet needs in all
        self._keepalive = keepalive
        self._last_in = self._last_out = self._ping_at = self._loop.time()
        self._timer: asyncio.TimerHandle | None = None
        self._why: str | None = None  # why we closed it, when we did
        self._error: Exception | None = None  # … and what the requests waiting fail with
        self._waiting: dict[int, asyncio.Future[Any]] = {}  # our SUBSCRIBEs and PUBLISHes
        self._next_id = 0

    # asyncio callbacks ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._write(self._connect)
        self._schedule_tick()

    def data_received(self, data: bytes) -> None:
        self._last_in = self._loop.time()
        if self._partial:
            self._partial += data
            if len(self._partial) < self._wanted:
                return
            data = bytes(self._partial)
            self._partial = bytearray()
        publishes: list[tuple[str, bytes, int | None]] = []
        controls: list[tuple[int, int, bytes]] = []
        error = None
        try:
            used, qos1 = wire.read_packets(
                data, self.token_base, self._max_size, publishes, controls
            )
            if used < len(data):
                self._wanted = wire.packet_size(data[used:], self._max_size)
                self._partial = bytearray(data[used:])
            for kind, flags, body in controls:
                self._control(kind, flags, body)
        except wire.ProtocolError as exc:
            error = exc
            qos1 = sum(1 for m in publishes if m[2] is not None)
        if publishes and self.up:
            self.received += qos1
            self._owner.deliver_batch(publishes)
        elif publishes and error is None:
            error = wire.ProtocolError(wire.PROTOCOL_ERROR, "PUBLISH before CONNACK")
        if error is not None:
            self._shut(f"protocol error: {error}", error.code, error)

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        why = self._why or (f"connection lost: {exc}" if exc else "the broker closed it")
        self.up = False
        if not self.closed.done():
            self.closed.set_result(why)
        failure = self._error or Closed(self._why or (str(exc) if exc else "no reason given"))
        waiting: list[asyncio.Future[Any]] = [self.connack, *self._waiting.values()]
        for future in waiting:
            if not future.done():
                future.set_exception(failure)
        self._waiting.clear()

    # control packets --------------------------------------------------------------------

    def _control(self, kind: int, flags: int, body: bytes) -> None:
        if flags:
            raise wire.ProtocolError(wire.MALFORMED, f"packet type {kind} with flags {flags}")
        if kind == wire.PINGRESP:
            return
        if kind == wire.PUBACK:
            packet_id, reason = wire.decode_puback(body)
            self._answered(packet_id, reason)
        elif kind == wire.SUBACK:
            packet_id, reasons, text = wire.decode_suback(body)
            self._answered(packet_id, (reasons, text))
        elif kind == wire.CONNACK and not self.connack.done():
            connack = wire.decode_connack(body)
            self.up = not connack.refused
            keepalive = connack.properties.get(wire.SERVER_KEEP_ALIVE)
            if isinstance(keepalive, int):
                self._keepalive = float(keepalive)  # the broker's value wins (§3.2.2.3.14)
                if self._timer is None:
                    self._schedule_tick()
            self.connack.set_result(connack)
        elif kind == wire.DISCONNECT:
            reason, text = wire.decode_disconnect(body)
            detail = f": {text}" if text else ""
            self._shut(f"the broker disconnected: {wire.reason_name(reason)}{detail}", None)
        else:
            raise wire.ProtocolError(wire.PROTOCOL_ERROR, f"unexpected packet type {kind}")

    def _answered(self, packet_id: int, answer: object) -> None:
        future = self._waiting.pop(packet_id, None)
        if future is not None and not future.done():
            future.set_result(answer)

    # what the receiver asks -------------------------------------------------------------

    def ack(self, packet_ids: list[int]) -> None:
        if self.up and packet_ids:
            self._write(wire.encode_pubacks(packet_ids))
            self.acked += len(packet_ids)

    def subscribe(self, filters: Sequence[tuple[str, int]]) -> asyncio.Future[Any]:
        """SUBSCRIBE; the future gets ``(reason codes, reason string)`` from the SUBACK."""
        packet_id, future = self._request()
        self._write(wire.encode_subscribe(packet_id, filters))
        return future

    def publish(self, topic: str, payload: bytes, retain: bool) -> asyncio.Future[Any]:
        """PUBLISH at QoS 1; the future gets the PUBACK's reason code."""
        packet_id, future = self._request()
        encoded = wire.encode_publish(topic, payload, qos=1, retain=retain, packet_id=packet_id)
        self._write(encoded)
        return future

    def disconnect(self) -> None:
        """A normal DISCONNECT: the broker keeps the session and drops the will."""
        self._shut("disconnected", wire.NORMAL)

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def _request(self) -> tuple[int, asyncio.Future[Any]]:
        while True:
            self._next_id = self._next_id % wire.MAX_PACKET_ID + 1
            if self._next_id not in self._waiting:
                break
        future: asyncio.Future[Any] = self._loop.create_future()
        future.add_done_callback(_quiet)
        self._waiting[self._next_id] = future
        return self._next_id, future

    def _write(self, data: bytes) -> None:
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.write(data)
            self._last_out = self._loop.time()

    def _shut(self, why: str, reason: int | None, error: Exception | None = None) -> None:
        """Close for ``why``, saying so to the broker with DISCONNECT ``reason`` if given;
        requests still waiting fail with ``error``."""
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        self._why, self._error = why, error
        if reason is not None:
            transport.write(wire.encode_disconnect(reason))
        transport.close()
        # A peer that stopped reading would keep the unsent bytes, and the socket, forever.
        self._loop.call_later(STATUS_TIMEOUT, transport.abort)

    # keepalive ---------------------------------------------------------------------

    def _schedule_tick(self) -> None:
        if self._keepalive > 0:
            self._timer = self._loop.call_later(min(1.0, self._keepalive / 4), self._tick)

    def _tick(self) -> None:
        keepalive = self._keepalive
        if keepalive <= 0:  # the broker's Server Keep Alive turned it off
            self._timer = None
            return
        now = self._loop.time()
        silent = now - self._last_in
        if silent >= 1.5 * keepalive and self._transport is not None:
            self._why = f"no answer from the broker for {silent:.1f} s (keepalive {keepalive:g} s)"
            self._error = TimeoutError(self._why)
            self._transport.abort()
            return
        waiting = self._ping_at > self._last_in
        if now - self._last_out >= keepalive or (silent >= keepalive / 2 and not waiting):
            self._write(wire.PINGREQ_PACKET)
            self._ping_at = now
        self._schedule_tick()


class Receiver:
    """Keeps the ingest connection up and hands what arrives to ``deliver_batch``."""

    def __init__(
        self,
        cfg: MqttConfig,
        subscriptions: Iterable[tuple[str, int]],
        *,
        receive_maximum: int,
        status_topic: str,
        on_up: Callable[[bool], None],
        on_down: Callable[[], None],
    ) -> None:
        self._cfg = cfg
        self._subscriptions = list(subscriptions)
        self._status_topic = status_topic
        self._on_up = on_up
        self._on_down = on_down
        self.deliver_batch: DeliverBatch = _ignore
        password = cfg.password.get_secret_value().encode() if cfg.password else None
        self._keepalive = math.ceil(cfg.keepalive)
        # Encoded once: a value that does not fit MQTT fails here, when the gateway starts.
        self._connect = wire.Connect(
            client_id=cfg.client_id,
            keepalive=self._keepalive,
            session_expiry=int(cfg.session_expiry),
            receive_maximum=receive_maximum,
            maximum_packet_size=cfg.max_packet_size,
            will=wire.Will(status_topic, b"offline", qos=1, retain=True),
            username=cfg.username,
            password=password if cfg.username else None,
        ).encode()
        self._tls = tls_context(cfg)
        self._backoff = Backoff(base=cfg.reconnect_min, cap=cfg.reconnect_max)
        self.watch = ConnectionWatch(cfg, "ingest", steps=self._backoff)
        self._generation = 0
        self._connection: Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def connection(self) -> Connection | None:
        """The connection while it is up."""
        conn = self._connection
        return conn if conn is not None and conn.up else None

    def start(self, deliver_batch: DeliverBatch) -> None:
        """Connect and keep connecting, on the running event loop."""
        self.deliver_batch = deliver_batch
        self._task = asyncio.get_running_loop().create_task(self._run(), name="mqtt-ingest")

    def stop_delivering(self) -> None:
        """Drop what arrives from now on (unacknowledged, it comes again next session)."""
        self.deliver_batch = _ignore

    def ack(self, tokens: Iterable[int]) -> None:
        """PUBACK the messages of these tokens that arrived on the current connection."""
        conn = self.connection
        if conn is None:
            return
        generation = conn.generation
        conn.ack([token & 0xFFFF for token in tokens if token >> 16 == generation])

    async def close(self) -> None:
        """Publish ``offline``, disconnect normally (the will is not sent) and stop."""
        self._stopping = True
        conn = self.connection
        if conn is not None:
            with contextlib.suppress(TimeoutError, Closed, wire.ProtocolError):
                async with asyncio.timeout(STATUS_TIMEOUT):
                    await conn.publish(self._status_topic, b"offline", retain=True)
            conn.disconnect()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(STATUS_TIMEOUT):
                    await asyncio.shield(conn.closed)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._connection is not None:
            self._connection.abort()

    # the connection loop -------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        # step: the backoff step, one more for each failed attempt and each connection
        # lost before it was STABLE (a broker that takes connections and drops them at
        # once, or another client with our id, is not hammered either).
        step = 0
        while not self._stopping:
            try:
                conn, session_present = await self._attempt()
            except Exception as exc:  # whatever failed, the next attempt may not
                delay = self._backoff.delay(step)
                step += 1
                await self._failed(exc)
                await asyncio.sleep(delay)
                continue
            self._connected(conn, session_present)
            up_since = loop.time()
            why = await asyncio.shield(conn.closed)
            if self._stopping:
                return
            self._on_down()
            if loop.time() - up_since >= STABLE:
                step = 0
            self.watch.lost(why, step)
            delay = self._backoff.delay(step)
            step += 1
            await asyncio.sleep(delay)

    async def _attempt(self) -> tuple[Connection, bool]:
        self._generation += 1
        conn = self._connection = Connection(
            self, self._generation, self._connect, self._keepalive, self._cfg.max_packet_size
        )
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                await loop.create_connection(
                    lambda: conn,
                    self._cfg.host,
                    self._cfg.port,
                    ssl=self._tls,
                    server_hostname=self._cfg.host if self._tls is not None else None,
                )
                connack = await conn.connack
        except BaseException:
            conn.abort()
            raise
        if connack.refused:
            conn.abort()
            raise Refused(connack.reason)
        return conn, connack.session_present

    async def _failed(self, exc: Exception) -> None:
        if isinstance(exc, Refused):
            self.watch.login_refused(wire.REASONS.get(exc.code, "unknown reason"), exc.code)
        elif isinstance(exc, Closed):
            self.watch.closed_unanswered(exc.detail)
        else:
            # Off the loop: for an untrusted certificate the watch opens a connection of its
            # own to read whose certificate it was.
            await asyncio.to_thread(self.watch.attempt_failed, exc)

    def _connected(self, conn: Connection, session_present: bool) -> None:
        if self._subscriptions:
            conn.subscribe(self._subscriptions).add_done_callback(self._subscribed)
        conn.publish(self._status_topic, b"online", retain=True)
        self.watch.up()
        self._on_up(session_present)
        log.info(
            "connected to %s:%d (session %s); subscribed to %s",
            self._cfg.host,
            self._cfg.port,
            "resumed" if session_present else "new",
            ", ".join(t for t, _ in self._subscriptions),
        )

    def _subscribed(self, future: asyncio.Future[Any]) -> None:
        if future.cancelled() or future.exception() is not None:
            return  # the connection closed first; the next one subscribes again
        reasons, text = future.result()
        for (topic_filter, _), reason in zip(self._subscriptions, reasons, strict=False):
            if reason >= 0x80:
                log.error(
                    "the broker refused the subscription to %s: %s%s",
                    topic_filter,
                    wire.reason_name(reason),
                    f" ({text})" if text else "",
                )
