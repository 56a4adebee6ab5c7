"""Helpers for the simulator tests: a real paho subscriber that records what arrives.

The brokers come from tests/conftest.py (`mosquitto`: a fresh Mosquitto per test).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import paho.mqtt.client as mqtt
import pytest

from tests.services import Mosquitto


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool
    at: float  # time.monotonic() on arrival


class Subscriber:
    """A paho-mqtt client on its own network thread, recording every message."""

    def __init__(self, port: int, topics: list[str], qos: int = 1) -> None:
        self.messages: list[Received] = []
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        self._client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-sub-{uuid.uuid4().hex[:8]}"
        )
        self._client.on_connect = lambda c, u, f, rc, p: c.subscribe([(t, qos) for t in topics])
        self._client.on_subscribe = lambda *a: self._subscribed.set()
        self._client.on_message = self._on_message
        self._client.connect("127.0.0.1", port)
        self._client.loop_start()
        if not self._subscribed.wait(10):
            raise TimeoutError("subscriber did not get its SUBACK")

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        with self._cond:
            self.messages.append(Received(msg.topic, msg.payload, msg.retain, time.monotonic()))
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[list[Received]], bool], timeout: float = 10) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: predicate(self.messages), timeout):
                seen = [(m.topic, m.payload) for m in self.messages[-10:]]
                raise AssertionError(f"timed out after {timeout} s; last messages: {seen}")

    def snapshot(self) -> list[Received]:
        with self._cond:
            return list(self.messages)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def statuses(messages: list[Received]) -> dict[str, bytes]:
    """Latest payload per ``devices/{id}/status`` topic, by device id."""
    out: dict[str, bytes] = {}
    for m in messages:
        parts = m.topic.split("/")
        if len(parts) == 3 and parts[0] == "devices" and parts[2] == "status":
            out[parts[1]] = m.payload
    return out


@pytest.fixture
def subscribe(mosquitto: Mosquitto) -> Iterator[Callable[..., Subscriber]]:
    """``subscribe(["sensors/#"])`` → a Subscriber on the test's broker, closed afterwards."""
    made: list[Subscriber] = []

    def make(topics: list[str], qos: int = 1) -> Subscriber:
        sub = Subscriber(mosquitto.port, topics, qos)
        made.append(sub)
        return sub

    yield make
    for sub in made:
        sub.close()
