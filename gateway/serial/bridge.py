"""The serial bridge: one serial sensor ⇄ MQTT in the ``outpost`` convention.

Port → broker: bytes are framed (:mod:`devices.serial.framing`), mapped through
the optional profile (:mod:`devices.profiles`) and published as one JSON object
per frame on ``sensors/{device}`` with ``ts`` in epoch nanoseconds (the
bridge's arrival time: hobby boards have no real-time clock, so a ``ts`` field
in a frame is ignored; nanoseconds keep two frames of one millisecond apart in
InfluxDB). Lines the framing refuses go to ``outpost/deadletter`` (at most
``deadletter_per_s`` a second; the rest are only counted).

Broker → port: a JSON object with an ``id`` on ``devices/{device}/set`` is
written to the port as one JSON line; the device's reply line
``{"ack": "<id>", "ok": true}`` (``"error"`` optional) becomes
``{"id": "<id>", "ok": true}`` on ``devices/{device}/ack``. A command that
arrives while the port is gone is dropped and counted, not refused: the
gateway's retries may reach the device once it is back.

Status: ``devices/{device}/status`` is ``online`` (retained) while the port is
open and ``offline`` while it is not; the MQTT will says ``offline`` if the
bridge dies. An unplugged device (a read or write error) closes the port; it is
reopened every ``reopen_interval`` seconds. The MQTT connection is retried the
same way and independently: a broker restart does not close the port (which
would reset many Arduinos through DTR).

**Reading the port**: pyserial's blocking ``read`` (timeout ``read_timeout``)
runs in a two-thread executor owned by the bridge (one reader, one writer), not
pyserial-asyncio-fast: blocking reads behave the same on every platform
pyserial supports, an unplug surfaces as an exception from ``read`` rather than
as a transport callback, and a read returns everything already buffered
(``in_waiting``), so a busy port costs one thread hop per batch, not per line.

**Queue**: frames wait for the broker in a bounded queue (``queue_size``); when
it is full the oldest message is dropped (fresh readings matter more) and
counted as ``dropped_outbound``.

Lifecycle: ``bridge = SerialBridge(SerialConfig(...), MqttConfig(...))`` (settings in
:mod:`gateway.serial.settings`, the blocking pyserial calls in :mod:`gateway.serial.port`);
``await bridge.run()`` until cancelled (a clean stop publishes ``offline``).
``bridge.counters`` holds every counter.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
import serial  # type: ignore[import-untyped]  # no stubs installed (types-pyserial)

from devices.model import check_device_id
from devices.profiles import FrameMapper, get_profile
from devices.serial.framing import Frame, LineFramer, make_framer
from gateway import deadletter
from gateway.logsetup import Throttled
from gateway.serial.port import close_quietly, open_serial, read_available, write_all
from gateway.serial.settings import MqttConfig, SerialConfig, mqtt_from_gateway

log = logging.getLogger(__name__)
# A port that cannot be opened (unplugged, wrong name, no permission) is retried every
# reopen_interval; it is said at once, then at most once a minute.
OPEN_FAILURE_LOG_INTERVAL = 60.0



class _QuietPendingCalls(logging.Filter):
    # aiomqtt warns "There are N pending publish calls" past 10 concurrent publishes;
    # the bridge keeps up to max_inflight in flight on purpose.
    def filter(self, record: logging.LogRecord) -> bool:
        return "pending publish calls" not in record.getMessage()


_mqtt_log = logging.getLogger(__name__ + ".mqtt")
_mqtt_log.addFilter(_QuietPendingCalls())


@dataclass(frozen=True, slots=True)
class _Outgoing:
    topic: str
    payload: bytes
    retain: bool = False


class SerialBridge:
    def __init__(
        self,
        config: SerialConfig,
        mqtt: MqttConfig | None = None,
        *,
        open_port: Callable[[SerialConfig], serial.Serial] | None = None,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        check_device_id(config.device)
        self.config = config
        self.mqtt = mqtt or MqttConfig()
        self.counters: Counter[str] = Counter()
        self.framer: LineFramer = make_framer(config.framing, config.max_line, self.counters)
        profile = get_profile(config.profile) if config.profile else None
        self.mapper = FrameMapper(config.device, profile, self.counters)
        self._open_port = open_port or open_serial
        self._open_failures = Throttled(log, OPEN_FAILURE_LOG_INTERVAL)
        self._clock = clock
        device = config.device
        self.readings_topic = f"sensors/{device}"
        self.status_topic = f"devices/{device}/status"
        self.set_topic = f"devices/{device}/set"
        self.ack_topic = f"devices/{device}/ack"
        self.port: serial.Serial | None = None
        self.port_open = asyncio.Event()  # set while the port is open (tests and status)
        self.listening = asyncio.Event()  # set while subscribed to the command topic
        self._status_changed = asyncio.Event()
        self._outbox: asyncio.Queue[_Outgoing] = asyncio.Queue(maxsize=config.queue_size)
        self._deadletter_window = (0, 0)  # (second, count)
        self._executor: ThreadPoolExecutor | None = None

    # --- lifecycle -----------------------------------------------------------------

    async def run(self) -> None:
        """Bridge until cancelled."""
        self._executor = ThreadPoolExecutor(2, thread_name_prefix=f"serial-{self.config.device}")
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._port_loop(), name="serial-port")
                group.create_task(self._mqtt_loop(), name="serial-mqtt")
        finally:
            port, self.port = self.port, None
            if port is not None:
                close_quietly(port)
            self.port_open.clear()
            self._executor.shutdown(wait=True, cancel_futures=True)

    async def _in_thread(self, func: Callable[..., Any], *args: Any) -> Any:
        assert self._executor is not None
        return await asyncio.get_running_loop().run_in_executor(self._executor, func, *args)

    # --- port side -----------------------------------------------------------------

    async def _port_loop(self) -> None:
        while True:
            try:
                port = await self._in_thread(self._open_port, self.config)
            except (serial.SerialException, OSError, ValueError) as exc:
                self.counters["open_failures"] += 1
                self._open_failures.log(
                    "open",
                    logging.WARNING,
                    "cannot open serial port %s (%s): %s; retrying every %ss",
                    self.config.port,
                    self.config.device,
                    _open_error(exc),
                    self.config.reopen_interval,
                )
                await asyncio.sleep(self.config.reopen_interval)
                continue
            self.port = port
            self.counters["port_opens"] += 1
            log.info("serial port %s open (%s)", self.config.port, self.config.device)
            self._set_online(True)
            try:
                await self._read_until_gone(port)
            finally:
                self.port = None
                close_quietly(port)
                self.framer.reset()
                self._drain_rejected()
            self.counters["port_losses"] += 1
            log.warning("serial port %s lost; retrying every %ss", self.config.port,
                        self.config.reopen_interval)  # fmt: skip
            self._set_online(False)
            await asyncio.sleep(self.config.reopen_interval)

    async def _read_until_gone(self, port: serial.Serial) -> None:
        while True:
            try:
                data = await self._in_thread(read_available, port)
            except (serial.SerialException, OSError, TypeError, AttributeError) as exc:
                # TypeError/AttributeError: pyserial touching a file descriptor it closed.
                log.debug("read from %s failed: %s", self.config.port, exc)
                return
            if data:
                self.counters["bytes_read"] += len(data)
                self._handle_frames(self.framer.feed(data))
                self._drain_rejected()

    def _handle_frames(self, frames: list[Frame]) -> None:
        for frame in frames:
            if "ack" in frame:
                self._handle_reply(frame)
                continue
            ts = self._clock()
            readings = self.mapper.map({k: v for k, v in frame.items() if k != "ts"}, ts)
            if not readings:
                self.counters["frames_without_readings"] += 1
                continue
            body: dict[str, Any] = {r.metric: r.value for r in readings}
            body["ts"] = ts
            self._enqueue(_Outgoing(self.readings_topic, json.dumps(body).encode()))
            self.counters["frames_published"] += 1

    def _handle_reply(self, frame: Frame) -> None:
        command_id = frame.get("ack")
        if not isinstance(command_id, (str, int)) or isinstance(command_id, bool):
            self.counters["bad_replies"] += 1
            return
        body: dict[str, Any] = {"id": str(command_id), "ok": frame.get("ok", True) is True}
        if "error" in frame:
            body["error"] = str(frame["error"])
        self._enqueue(_Outgoing(self.ack_topic, json.dumps(body).encode()))
        self.counters["acks"] += 1

    def _drain_rejected(self) -> None:
        while self.framer.rejected:
            rejected = self.framer.rejected.popleft()
            now = self._clock()
            second, count = self._deadletter_window
            if now // 1_000_000_000 != second:
                second, count = now // 1_000_000_000, 0
            if count >= self.config.deadletter_per_s:
                self.counters["deadletter_suppressed"] += 1
                continue
            self._deadletter_window = (second, count + 1)
            body = deadletter.encode(
                f"serial:{self.config.port}", rejected.line, rejected.reason, "", now
            )
            self._enqueue(_Outgoing(deadletter.TOPIC, body))

    def _enqueue(self, message: _Outgoing) -> None:
        if self._outbox.full():
            self._outbox.get_nowait()  # drop the oldest: fresh readings matter more
            self.counters["dropped_outbound"] += 1
        self._outbox.put_nowait(message)

    def _set_online(self, online: bool) -> None:
        if online:
            self.port_open.set()
        else:
            self.port_open.clear()
        self._status_changed.set()

    async def write_command(self, payload: bytes) -> bool:
        """Write one command line to the port; False if there is no port or it failed."""
        port = self.port
        if port is None:
            self.counters["commands_dropped_offline"] += 1
            return False
        try:
            await self._in_thread(write_all, port, payload)
        except (serial.SerialException, OSError, TypeError, AttributeError) as exc:
            self.counters["command_write_failures"] += 1
            log.warning("writing a command to %s failed: %s", self.config.port, exc)
            return False
        self.counters["commands_written"] += 1
        return True

    # --- broker side ---------------------------------------------------------------

    def _client(self) -> aiomqtt.Client:
        return aiomqtt.Client(
            self.mqtt.host,
            self.mqtt.port,
            username=self.mqtt.username,
            password=self.mqtt.password,
            identifier=self.mqtt.client_id or f"outpost-serial-{self.config.device}",
            clean_session=True,  # commands sent while the bridge was away are stale
            will=aiomqtt.Will(self.status_topic, b"offline", qos=1, retain=True),
            tls_context=self.mqtt.tls_context,
            max_inflight_messages=self.mqtt.max_inflight,
            logger=_mqtt_log,
        )

    async def _mqtt_loop(self) -> None:
        while True:
            try:
                async with self._client() as client:
                    self.counters["mqtt_connects"] += 1
                    await self._session(client)
            except* aiomqtt.MqttError as group:
                self.counters["mqtt_errors"] += 1
                log.warning(
                    "MQTT %s:%s: %s; reconnecting in %ss",
                    self.mqtt.host,
                    self.mqtt.port,
                    group.exceptions[0],
                    self.mqtt.reconnect_interval,
                )
            await asyncio.sleep(self.mqtt.reconnect_interval)

    async def _session(self, client: aiomqtt.Client) -> None:
        await client.subscribe(self.set_topic, qos=1)
        self.listening.set()
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._publish_status(client))
                for _ in range(max(1, self.mqtt.max_inflight)):
                    group.create_task(self._publish_outbox(client))
                group.create_task(self._receive_commands(client))
        except asyncio.CancelledError:
            # A clean stop: say so now rather than leaving the will to the keepalive.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    client.publish(self.status_topic, b"offline", qos=1, retain=True), 2
                )
            raise
        finally:
            self.listening.clear()

    async def _publish_status(self, client: aiomqtt.Client) -> None:
        while True:
            self._status_changed.clear()
            payload = b"online" if self.port_open.is_set() else b"offline"
            await client.publish(self.status_topic, payload, qos=1, retain=True)
            await self._status_changed.wait()

    async def _publish_outbox(self, client: aiomqtt.Client) -> None:
        while True:
            message = await self._outbox.get()
            try:
                await client.publish(message.topic, message.payload, qos=self.mqtt.qos,
                                     retain=message.retain)  # fmt: skip
            except aiomqtt.MqttError:
                self._requeue(message)
                raise

    def _requeue(self, message: _Outgoing) -> None:
        # Put an unsent message back in front so a reconnect does not lose it.
        items = [message]
        while not self._outbox.empty():
            items.append(self._outbox.get_nowait())
        for item in items[: self._outbox.maxsize]:
            self._outbox.put_nowait(item)
        self.counters["dropped_outbound"] += max(0, len(items) - self._outbox.maxsize)

    async def _receive_commands(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            if not message.topic.matches(self.set_topic):
                continue
            payload = message.payload if isinstance(message.payload, bytes) else b""
            line = _command_line(payload)
            if line is None:
                self.counters["bad_commands"] += 1
                body = deadletter.encode(
                    self.set_topic, payload, "bad_command", "not a JSON command", self._clock()
                )
                self._enqueue(_Outgoing(deadletter.TOPIC, body))
                continue
            await self.write_command(line)


def _open_error(exc: Exception) -> str:
    """The reason a port did not open, without pyserial's repetition of the path."""
    errno_ = getattr(exc, "errno", None)
    return os.strerror(errno_) if isinstance(errno_, int) else str(exc)


def _command_line(payload: bytes) -> bytes | None:
    """The line to write for a ``/set`` payload: a JSON object with an id, on one line."""
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("id"), (str, int)):
        return None
    return json.dumps(data, separators=(",", ":")).encode() + b"\n"


def bridges_from_config(config: Any, resolve: Callable[[str], Path] = Path) -> list[SerialBridge]:
    """One bridge per ``serial:`` entry of the gateway's ``Config``, on the gateway's broker.

    The gateway runs each ``bridge.run()`` as a task of its own task group and
    cancels it on shutdown (each then publishes ``offline`` and closes its port).
    """
    mqtt = mqtt_from_gateway(config.mqtt, resolve)
    return [
        SerialBridge(
            SerialConfig(
                port=str(resolve(entry.port)) if entry.port.startswith(".") else entry.port,
                device=entry.device,
                baud=entry.baud,
                framing=entry.framing,
                profile=entry.profile,
            ),
            mqtt,
        )
        for entry in config.serial
    ]
