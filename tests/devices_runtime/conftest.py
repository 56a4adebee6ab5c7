"""Fixtures of tests/devices (pty sensor, paho subscriber), shared with the runtime tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.devices.conftest import FakeSerialDevice, Subscriber


@pytest.fixture
def serial_device(tmp_path: Path) -> Iterator[FakeSerialDevice]:
    device = FakeSerialDevice(tmp_path / "ttyFAKE")
    yield device
    device.unplug()


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
