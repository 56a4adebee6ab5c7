"""Batching, acknowledgement order, bad-point isolation and retries of the InfluxDB writer.

The sink here is an in-memory stand-in: this is the writer's own logic. The same
behaviour against real InfluxDB and a fault-injecting proxy is covered in
test_ingest_e2e.py.
"""

from __future__ import annotations

import asyncio

from gateway.deadletter import DeadLetters
from gateway.influx.sink import WriteError
from gateway.influx.writer import InfluxWriter
from gateway.metrics import Metrics


class MemorySink:
    def __init__(self) -> None:
        self.written: list[list[str]] = []
        self.refuse: set[str] = set()
        self.failures: list[Exception] = []
        self.calls = 0

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    def describe(self) -> str:
        return "memory"

    async def write(self, body: str) -> None:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        lines = body.split("\n")
        if self.refuse.intersection(lines):
            raise WriteError("bad_points", "partial write: field type conflict", 400)
        self.written.append(lines)


def make(sink, **kw):
    letters: list[tuple[str, bytes, str]] = []
    acked: list[object] = []
    metrics = Metrics()
    dl = DeadLetters(lambda topic, payload: letters.append((topic, payload)), metrics)
    options = {"batch_size": 100, "flush_interval": 0.05, "max_buffer": 1000}
    options.update(kw)
    writer = InfluxWriter(sink, deadletters=dl, metrics=metrics, on_acked=acked.extend, **options)
    return writer, letters, acked, metrics


async def run_until(writer, condition, timeout=5.0):
    task = asyncio.create_task(writer.run())
    try:
        async with asyncio.timeout(timeout):
            while not condition():
                await asyncio.sleep(0.01)
    finally:
        await writer.stop()
        await task


async def test_qos0_readings_are_written_after_flush_interval_without_a_full_batch():
    sink = MemorySink()
    writer, _, _, _ = make(sink, flush_interval=0.1)
    task = asyncio.create_task(writer.run())
    await asyncio.sleep(0.05)
    writer.add("m,device=a value=1 1", None, "t")
    await asyncio.sleep(0.3)
    assert sink.written == [["m,device=a value=1 1"]]
    await writer.stop()
    await task


async def test_full_batch_is_written_at_once_and_acks_keep_message_order():
    sink = MemorySink()
    writer, _, acked, _ = make(sink, batch_size=10, flush_interval=60)
    for i in range(25):
        writer.add(f"m value={i} {i}", ("tok", i), "t")
    writer.add(None, ("tok", "no-point"), "t")  # a dead-lettered message between readings
    writer.add("m value=99 99", ("tok", 99), "t")
    await run_until(writer, lambda: len(acked) == 27)
    assert [len(b) for b in sink.written][:2] == [10, 10]
    assert acked == [("tok", i) for i in range(25)] + [("tok", "no-point"), ("tok", 99)]


async def test_refused_point_is_isolated_and_dead_lettered_the_rest_written():
    sink = MemorySink()
    sink.refuse = {"m value=bad 7"}
    writer, letters, acked, _metrics = make(sink, batch_size=1000, flush_interval=0.01)
    for i in range(1000):
        writer.add("m value=bad 7" if i == 7 else f"m value={i} {i}", i, f"sensors/{i}")
    await run_until(writer, lambda: len(acked) == 1000)
    stored = [line for batch in sink.written for line in batch]
    assert len(stored) == 999 and "m value=bad 7" not in stored
    assert [(t, p) for t, p in letters] and letters[0][0] == "outpost/deadletter"
    assert b'"reason": "influx_rejected"' in letters[0][1] and b"sensors/7" in letters[0][1]
    assert acked == list(range(1000))  # the bad one is acknowledged too: it is dead-lettered
    assert sink.calls < 40  # bisection, not one request per line


async def test_server_errors_keep_the_batch_and_retry_honouring_retry_after():
    sink = MemorySink()
    sink.failures = [
        WriteError("throttled", "429", 429, retry_after=0.2),
        WriteError("connection", "refused"),
    ]
    writer, _, acked, metrics = make(sink)
    writer.add("m value=1 1", "a", "t")
    loop = asyncio.get_running_loop()
    started = loop.time()
    await run_until(writer, lambda: acked == ["a"])
    assert loop.time() - started >= 0.2
    assert sink.written == [["m value=1 1"]]
    samples = {
        s.labels["kind"]: s.value
        for s in metrics.influx_errors.collect()[0].samples
        if s.name.endswith("_total")
    }
    assert samples == {"throttled": 1.0, "connection": 1.0}


async def test_an_exception_the_sink_was_not_meant_to_raise_is_a_failed_write_retried():
    # As a login page answering 200 where JSON was expected makes the 1.x sink raise.
    sink = MemorySink()
    sink.failures = [ValueError("Expecting value: line 1 column 1"), ValueError("again")]
    writer, _, acked, metrics = make(sink)
    writer.add("m value=1 1", "a", "t")
    await run_until(writer, lambda: acked == ["a"], timeout=10)
    assert sink.written == [["m value=1 1"]]
    assert metrics.influx_errors.labels("internal")._value.get() == 2


async def test_a_line_utf8_cannot_carry_is_dead_lettered_before_it_reaches_a_batch():
    sink = MemorySink()
    writer, letters, acked, metrics = make(sink)
    writer.add("m value=1 1", "a", "t")
    writer.add('m text="\ud800" 2', "b", "sensors/x")
    writer.add("m value=3 3", "c", "t")
    await run_until(writer, lambda: acked == ["a", "b", "c"])
    assert sink.written == [["m value=1 1", "m value=3 3"]]
    assert b'"reason": "invalid_text"' in letters[0][1] and b"sensors/x" in letters[0][1]
    assert metrics.deadletters.labels("invalid_text")._value.get() == 1


async def test_full_buffer_drops_oldest_qos0_but_never_qos1():
    sink = MemorySink()
    sink.failures = [WriteError("connection", "down")] * 1000
    writer, _, _, metrics = make(sink, batch_size=100, max_buffer=1000, flush_interval=0.01)
    task = asyncio.create_task(writer.run())
    for i in range(3000):
        writer.add(f"m value={i} {i}", ("q1", i) if i % 10 == 0 else None, "t")
    await asyncio.sleep(0.05)
    assert writer.buffered <= 1000
    dropped = metrics.dropped.labels("buffer_full")._value.get()
    assert dropped >= 2000
    batches = [writer.writing, *writer._queue, writer._current]
    kept = [e.token for batch in batches for e in batch]
    assert sum(1 for t in kept if t is not None) == 300  # every QoS 1 reading is still there
    sink.failures = []
    await writer.stop()
    await task


async def test_stop_flushes_what_is_pending():
    sink = MemorySink()
    writer, _, acked, _ = make(sink, batch_size=10_000, flush_interval=3600)
    task = asyncio.create_task(writer.run())
    for i in range(500):
        writer.add(f"m value={i} {i}", i, "t")
    await asyncio.sleep(0.05)
    assert sink.written == []
    await writer.stop()
    await task
    assert sum(len(b) for b in sink.written) == 500 and acked == list(range(500))
