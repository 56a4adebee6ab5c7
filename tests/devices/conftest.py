"""Test doubles that cross real process boundaries: a serial device behind a real
pseudo-terminal, and a real paho-mqtt subscriber (the broker comes from tests/conftest.py)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import select
import threading
import time
import tty
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as paho
import pytest


class FakeSerialDevice:
    """The device side of a pseudo-terminal, reached by the bridge through a symlink.

    The symlink stands for a udev name such as ``/dev/serial/by-id/…``: unplugging
    closes the pty (the bridge's reads fail, the node disappears), plugging in again
    creates a new pty behind the same name. A responder thread reads the command lines
    the bridge writes and answers them through ``reply`` (default: ``{"ack": id, "ok": true}``).
    """

    def __init__(self, link: Path, reply: Callable[[dict], bytes | None] | None = None) -> None:
        self.link = link
        self.reply = reply or (lambda cmd: json.dumps({"ack": cmd["id"], "ok": True}).encode())
        self.commands: list[dict] = []
        self.raw_received = b""
        self._master: int | None = None
        self._slave: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.plug()

    def plug(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no CR translation before the bridge configures it
        self._master, self._slave = master, slave
        with contextlib.suppress(FileNotFoundError):
            self.link.unlink()
        self.link.symlink_to(os.ttyname(slave))
        self._stop.clear()
        self._thread = threading.Thread(target=self._respond, args=(master,), daemon=True)
        self._thread.start()

    def unplug(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        for fd in (self._master, self._slave):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = None
        with contextlib.suppress(FileNotFoundError):
            self.link.unlink()

    def write(self, data: bytes) -> None:
        assert self._master is not None, "unplugged"
        view = memoryview(data)
        while view:
            _, writable, _ = select.select([], [self._master], [], 5)
            assert writable, "the pty did not drain"
            written = os.write(self._master, view)
            view = view[written:]

    def line(self, text: str | dict) -> None:
        self.write((text if isinstance(text, str) else json.dumps(text)).encode() + b"\n")

    def _respond(self, master: int) -> None:
        pending = b""
        while not self._stop.is_set():
            try:
                readable, _, _ = select.select([master], [], [], 0.05)
                if not readable:
                    continue
                chunk = os.read(master, 4096)
            except OSError:
                return
            if not chunk:
                return
            self.raw_received += chunk
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                command = json.loads(line)
                self.commands.append(command)
                answer = self.reply(command)
                if answer is not None:
                    with contextlib.suppress(OSError):
                        os.write(master, answer + b"\n")


@pytest.fixture
def serial_device(tmp_path: Path) -> Iterator[FakeSerialDevice]:
    device = FakeSerialDevice(tmp_path / "ttyFAKE")
    yield device
    device.unplug()


@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool

    def json(self) -> dict:
        return json.loads(self.payload)


class Subscriber:
    """A real paho-mqtt client that records everything on its subscriptions."""

    def __init__(self, port: int, *topics: str) -> None:
        self.messages: list[Received] = []
        self._lock = threading.Lock()
        self.client = paho.Client(
            paho.CallbackAPIVersion.VERSION2, client_id=f"test-sub-{uuid.uuid4().hex[:8]}"
        )
        self.client.on_message = self._on_message
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.client.subscribe([(t, 1) for t in topics])
        assert subscribed.wait(10), "no SUBACK"

    def _on_message(self, client, userdata, message) -> None:
        with self._lock:
            self.messages.append(Received(message.topic, message.payload, message.retain))

    def on(self, topic: str) -> list[Received]:
        with self._lock:
            return [m for m in self.messages if m.topic == topic]

    def publish(self, topic: str, payload: bytes | str, qos: int = 1) -> None:
        self.client.publish(topic, payload, qos=qos).wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()  # first, so the network loop ends without its 1 s select
        self.client.loop_stop()


async def until(predicate: Callable[[], object], timeout: float = 10.0, what: str = "") -> None:
    """Wait (without blocking the event loop) until ``predicate()`` is true."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        await asyncio.sleep(0.02)


@pytest.fixture
def subscriber_factory():
    made: list[Subscriber] = []

    def make(port: int, *topics: str) -> Subscriber:
        sub = Subscriber(port, *topics)
        made.append(sub)
        return sub

    yield make
    for sub in made:
        sub.close()


@pytest.fixture
def device_id() -> str:
    return f"bench-{uuid.uuid4().hex[:8]}"
