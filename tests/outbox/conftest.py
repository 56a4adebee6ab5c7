"""Fixtures for the outbox tests: a fake wall clock and a factory over both buffers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gateway.outbox import Buffer, DiskOutbox, MemoryBuffer


class FakeClock:
    """Wall-clock seconds that only move when the test says so."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


MakeBuffer = Callable[..., Buffer]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["memory", "disk"])
def make_buffer(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> Iterator[MakeBuffer]:
    """``make_buffer(max_bytes=…, max_age=…)``: a MemoryBuffer or a DiskOutbox."""
    made: list[Buffer] = []

    def make(max_bytes: int = 1 << 30, max_age: float | None = None) -> Buffer:
        buf: Buffer
        if request.param == "memory":
            buf = MemoryBuffer(max_bytes, max_age=max_age, clock=clock)
        else:
            buf = DiskOutbox(
                tmp_path / f"state{len(made)}", max_bytes=max_bytes, max_age=max_age, clock=clock
            )
        made.append(buf)
        return buf

    yield make
    for buf in made:
        buf.close()
