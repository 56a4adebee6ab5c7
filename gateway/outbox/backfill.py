"""Draining the outbox at a capped rate while live readings keep flowing.

After an outage the outbox may hold hours of readings; sending them as fast as
InfluxDB takes them would starve the live stream (and can overload a small InfluxDB
on the same Pi). :class:`RateLimit` is a token bucket with time as an argument;
:func:`drain` is the loop the writer runs as its own task next to the live path::

    limit = RateLimit(rate=2000, burst=5000)          # lines/s, largest batch
    task = asyncio.create_task(drain(outbox, sink_write, limit, stop=stop_event))

``drain`` takes a batch (``begin``), writes it, ``accept``s on success and ``reject``s
on failure (then waits ``retry_delay``); it never holds more than one batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

from gateway.outbox.buffer import Batch, Buffer

Write = Callable[[list[str]], Awaitable[None]]


class RateLimit:
    """Token bucket: ``rate`` lines/s, at most ``burst`` at once (also the batch size)."""

    def __init__(self, rate: float, burst: int, now: float = 0.0) -> None:
        if rate <= 0 or burst <= 0:
            raise ValueError("rate and burst must be positive")
        self.rate, self.burst = rate, burst
        self._tokens = float(burst)
        self._at = now

    def available(self, now: float) -> int:
        """Lines that may be sent at ``now``."""
        self._refill(now)
        return int(self._tokens)

    def spend(self, n: int, now: float) -> None:
        self._refill(now)
        self._tokens -= n  # may go negative: a batch larger than the tokens is paid later

    def wait(self, n: int, now: float) -> float:
        """Seconds until ``n`` (at most ``burst``) lines may be sent."""
        self._refill(now)
        need = min(n, self.burst) - self._tokens
        return max(0.0, need / self.rate)

    def _refill(self, now: float) -> None:
        if now > self._at:
            self._tokens = min(float(self.burst), self._tokens + (now - self._at) * self.rate)
        self._at = max(self._at, now)


async def drain(
    buffer: Buffer,
    write: Write,
    limit: RateLimit,
    *,
    stop: asyncio.Event,
    idle_wait: float = 1.0,
    retry_delay: float = 5.0,
    clock: Callable[[], float] = time.monotonic,
    min_batch: int = 100,
    hold_off: Callable[[], float] | None = None,
) -> None:
    """Send the buffer's lines through ``write`` at most ``limit.rate`` lines/s until ``stop``.

    ``write`` raises on failure (the batch is rejected and retried after ``retry_delay``).
    ``hold_off()`` > 0 says how long to wait before taking the next batch (the writer's
    ``Retry-After`` or backoff); waiting there, no batch is held open meanwhile.
    Buffers with ``begin_async``/``accept_async``/``reject_async`` (DiskOutbox) are used
    through those, so the event loop never waits for the disk.
    """
    while not stop.is_set():
        if len(buffer) == 0:
            await _pause(stop, idle_wait)
            continue
        wait = hold_off() if hold_off is not None else 0.0
        if wait > 0:
            await _pause(stop, wait)
            continue
        want = min(limit.burst, max(min_batch, limit.available(clock())))
        delay = limit.wait(want, clock())
        if delay > 0:
            await _pause(stop, delay)
            continue
        batch = await _call(buffer, "begin", want)
        if batch is None:
            await _pause(stop, idle_wait)
            continue
        limit.spend(len(batch.lines), clock())
        try:
            await write(batch.lines)
        except asyncio.CancelledError:
            await _call(buffer, "reject", batch)
            raise
        except Exception:
            await _call(buffer, "reject", batch)
            await _pause(stop, retry_delay)
            continue
        await _call(buffer, "accept", batch)


async def _call(buffer: Buffer, name: str, arg: int | Batch) -> Batch | None:
    method = getattr(buffer, f"{name}_async", None)
    if method is not None:
        result: Batch | None = await method(arg)
        return result
    result = getattr(buffer, name)(arg)
    return result


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
