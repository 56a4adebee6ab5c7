"""DiskOutbox only: restarts, group commit, wear, locking, and a throughput figure."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from gateway.outbox import DiskOutbox, MemoryBuffer, RateLimit, drain


def lines(start: int, stop: int, tag: str = "m") -> list[str]:
    return [f"{tag},device=d v={i}i {1_800_000_000_000_000_000 + i}" for i in range(start, stop)]


def test_an_unaccepted_batch_is_delivered_again_after_a_restart(tmp_path: Path) -> None:
    outbox = DiskOutbox(tmp_path)
    outbox.append(lines(0, 10))
    batch = outbox.begin(4)
    assert batch is not None
    outbox.close()  # crashed between the write to InfluxDB and accept

    outbox = DiskOutbox(tmp_path)
    try:
        assert len(outbox) == 10
        again = outbox.begin(100)
        assert again is not None and again.lines == lines(0, 10)
    finally:
        outbox.close()


def test_accepted_lines_stay_gone_and_order_continues_after_a_restart(tmp_path: Path) -> None:
    outbox = DiskOutbox(tmp_path)
    outbox.append(lines(0, 10))
    batch = outbox.begin(6)
    assert batch is not None
    outbox.accept(batch)
    outbox.close()

    outbox = DiskOutbox(tmp_path)
    try:
        outbox.append(lines(10, 12))
        assert len(outbox) == 6 and outbox.bytes == sum(len(x) for x in lines(6, 12))
        again = outbox.begin(100)
        assert again is not None and again.lines == lines(6, 12)
        assert again.first > batch.last  # ids never go back
    finally:
        outbox.close()


async def test_append_durable_returns_once_the_lines_are_committed(tmp_path: Path) -> None:
    outbox = DiskOutbox(tmp_path, commit_interval=0.05)
    try:
        task = asyncio.create_task(outbox.append_durable(lines(0, 3)))
        await asyncio.sleep(0.01)
        assert not task.done()  # still inside the group window
        await asyncio.wait_for(task, 2)
        assert outbox.commits == 1
        # Read the file from a second connection: the lines are really there.
        check = sqlite3.connect(
            f"file:{tmp_path / 'outbox.sqlite3'}?mode=ro", uri=True, timeout=0.05
        )
        try:
            with pytest.raises(sqlite3.OperationalError):  # held exclusively by the outbox
                check.execute("SELECT count(*) FROM lines").fetchone()
        finally:
            check.close()
    finally:
        outbox.close()
    check = sqlite3.connect(tmp_path / "outbox.sqlite3")
    try:
        assert check.execute("SELECT count(*) FROM lines").fetchone() == (3,)
    finally:
        check.close()


async def test_a_cancelled_waiter_does_not_cancel_the_others(tmp_path: Path) -> None:
    outbox = DiskOutbox(tmp_path, commit_interval=0.05)
    try:
        a = asyncio.create_task(outbox.append_durable(lines(0, 1)))
        b = asyncio.create_task(outbox.append_durable(lines(1, 2)))
        await asyncio.sleep(0.01)
        a.cancel()
        await asyncio.wait_for(b, 2)
        assert len(outbox) == 2  # cancelling the wait does not withdraw the line
    finally:
        outbox.close()


async def test_group_commit_makes_far_fewer_commits_than_appends(tmp_path: Path) -> None:
    outbox = DiskOutbox(tmp_path)
    try:
        n = 2000

        async def reading(i: int) -> None:
            await outbox.append_durable(lines(i, i + 1))

        await asyncio.gather(*(reading(i) for i in range(n)))
        assert len(outbox) == n
        assert outbox.commits <= n // 50, outbox.stats()
        assert outbox.fsyncs <= n // 50
    finally:
        outbox.close()


def test_a_second_outbox_on_the_same_state_dir_is_refused(tmp_path: Path) -> None:
    outbox = DiskOutbox(tmp_path)
    try:
        outbox.append(lines(0, 1))
        outbox.commit()
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            DiskOutbox(tmp_path)
    finally:
        outbox.close()


def _snapshot(state_dir: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in state_dir.iterdir()}


def test_a_drained_outbox_gives_its_space_back_and_then_writes_nothing(tmp_path: Path) -> None:
    outbox = DiskOutbox(tmp_path)
    try:
        outbox.append(lines(0, 30_000))
        outbox.commit()
        big = sum(size for size, _ in _snapshot(tmp_path).values())
        while (batch := outbox.begin(5000)) is not None:
            outbox.accept(batch)
        outbox.commit()  # housekeeping (checkpoint, vacuum) runs after the accept
        small = _snapshot(tmp_path)
        assert sum(size for size, _ in small.values()) < big / 20
        commits = outbox.commits
        for _ in range(50):  # the fast path's check, many times
            assert len(outbox) == 0
        time.sleep(0.3)
        assert _snapshot(tmp_path) == small
        assert outbox.commits == commits
    finally:
        outbox.close()


async def test_backfill_drains_at_the_capped_rate(tmp_path: Path) -> None:
    outbox = DiskOutbox(tmp_path)
    try:
        outbox.append(lines(0, 3000))
        written: list[str] = []

        async def write(batch: list[str]) -> None:
            written.extend(batch)

        stop = asyncio.Event()
        limit = RateLimit(rate=5000, burst=500, now=time.monotonic())
        started = time.monotonic()
        task = asyncio.create_task(drain(outbox, write, limit, stop=stop, idle_wait=0.01))
        while len(outbox):
            await asyncio.sleep(0.01)
        elapsed = time.monotonic() - started
        stop.set()
        await task
        assert written == lines(0, 3000)
        assert elapsed >= (3000 - 500) / 5000 * 0.9  # the burst goes at once
    finally:
        outbox.close()


async def test_backfill_rejects_a_failed_batch_and_retries_it(tmp_path: Path) -> None:
    buf = MemoryBuffer(1 << 20)
    buf.append(lines(0, 10))
    calls: list[list[str]] = []

    async def write(batch: list[str]) -> None:
        calls.append(batch)
        if len(calls) == 1:
            raise ConnectionError("InfluxDB is down")

    stop = asyncio.Event()
    limit = RateLimit(rate=1e6, burst=100)
    task = asyncio.create_task(drain(buf, write, limit, stop=stop, retry_delay=0.01))
    while len(buf):
        await asyncio.sleep(0.005)
    stop.set()
    await task
    assert calls == [lines(0, 10), lines(0, 10)]


def test_rate_limit_is_a_token_bucket() -> None:
    limit = RateLimit(rate=100, burst=50, now=0.0)
    assert limit.available(0.0) == 50
    limit.spend(50, 0.0)
    assert limit.available(0.1) == 10
    assert limit.wait(50, 0.1) == pytest.approx(0.4)
    assert limit.available(100.0) == 50  # never more than the burst


async def publish(outbox: DiskOutbox, streams: int, per_append: int, n: int) -> float:
    """``streams`` concurrent publishers, each waiting for its appends one at a time."""
    line = "environment,device=gh-1,site=north temperature=21.5,humidity=40.2 1795755841"

    async def publisher(k: int) -> None:
        for i in range(k * per_append, n, streams * per_append):
            await outbox.append_durable([line + str(j) for j in range(i, i + per_append)])

    started = time.perf_counter()
    await asyncio.gather(*(publisher(k) for k in range(streams)))
    return time.perf_counter() - started


async def test_durable_append_throughput(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Figures, not a gate: durable appends/s and fsyncs per 10k lines on this disk."""
    report = []
    for streams, per_append, n in [(100, 1, 20_000), (1, 500, 100_000)]:
        outbox = DiskOutbox(tmp_path / f"s{streams}")
        try:
            elapsed = await publish(outbox, streams, per_append, n)
            assert len(outbox) == n
            report.append(
                f"{streams} concurrent x {per_append}-line appends: {n / elapsed:,.0f} lines/s "
                f"durable, {outbox.commits} commits = {outbox.fsyncs * 10_000 / n:.1f} "
                "fsyncs per 10k lines"
            )
        finally:
            outbox.close()
    with capsys.disabled():
        print("\n[outbox] " + "\n[outbox] ".join(report))


async def test_the_age_bound_is_applied_by_itself_while_lines_wait(tmp_path: Path) -> None:
    now = [1_800_000_000.0]
    outbox = DiskOutbox(tmp_path, max_age=60.0, expire_interval=0.02, clock=lambda: now[0])
    try:
        await outbox.append_durable(lines(0, 5))
        now[0] += 30
        await outbox.append_durable(lines(5, 7))
        now[0] += 31  # the first five are 61 s old
        for _ in range(100):
            if outbox.dropped_age:
                break
            await asyncio.sleep(0.01)
        assert outbox.dropped_age == 5 and len(outbox) == 2
        assert outbox.oldest_age(now[0]) == pytest.approx(31)
    finally:
        outbox.close()
