"""A full disk: new lines wait in a bounded memory fallback and go back to disk by themselves.

The state directory is a real 2 MiB tmpfs, filled with a ballast file, so SQLite meets a
genuine ENOSPC. Mounting needs root (CAP_SYS_ADMIN); where the test runs without it,
the tmpfs cases run with SQLite's ``max_page_count`` standing in for the full disk
(SQLITE_FULL either way) and say so in the output; that stand-in also runs on its own.
"""

from __future__ import annotations

import asyncio
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.outbox import DiskOutbox, OutboxDropped


def lines(start: int, stop: int) -> list[str]:
    pad = "x" * 80
    return [f'm,device=d v={i}i,note="{pad}" {i}' for i in range(start, stop)]


class TmpfsDisk:
    """A 2 MiB filesystem of its own; ``fill`` leaves no byte free, ``free`` undoes it."""

    kind = "tmpfs (real ENOSPC)"

    def __init__(self, mountpoint: Path) -> None:
        self.state_dir = mountpoint
        self._ballast = mountpoint / "ballast"

    def fill(self, outbox: DiskOutbox) -> None:
        fd = os.open(self._ballast, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            for size in (65536, 4096, 1):  # down to the last byte
                while True:
                    try:
                        os.write(fd, b"\0" * size)
                    except OSError as exc:
                        assert exc.errno == errno.ENOSPC
                        break
        finally:
            os.close(fd)

    def free(self, outbox: DiskOutbox) -> None:
        self._ballast.unlink()


class PageLimitDisk:
    """Stand-in where mounting is not allowed: ``PRAGMA max_page_count`` (SQLITE_FULL)."""

    def __init__(self, state_dir: Path, why: str = "") -> None:
        self.state_dir = state_dir
        self.kind = f"SQLite max_page_count standing in for a full disk{why}"

    def fill(self, outbox: DiskOutbox) -> None:
        outbox._call(lambda: outbox._db().execute("PRAGMA max_page_count=1").fetchone())

    def free(self, outbox: DiskOutbox) -> None:
        outbox._call(lambda: outbox._db().execute("PRAGMA max_page_count=1000000").fetchone())


@pytest.fixture(params=["tmpfs", "page_limit"])
def small_disk(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[TmpfsDisk | PageLimitDisk]:
    mountpoint = tmp_path / "small"
    mountpoint.mkdir()
    if request.param == "page_limit":
        yield PageLimitDisk(mountpoint)
        return
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mountpoint)],
        capture_output=True,
        check=False,
    )
    if mount.returncode != 0:  # not root: the simulated full disk, said in the output
        yield PageLimitDisk(mountpoint, " (mount not permitted here)")
        return
    try:
        yield TmpfsDisk(mountpoint)
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


async def test_a_full_disk_falls_back_to_memory_and_returns_to_disk_by_itself(
    small_disk: TmpfsDisk | PageLimitDisk, capsys: pytest.CaptureFixture[str]
) -> None:
    with capsys.disabled():
        print(f"\n[outbox] disk full via {small_disk.kind}")
    outbox = DiskOutbox(small_disk.state_dir, retry_interval=0.1)
    try:
        await outbox.append_durable(lines(0, 100))
        small_disk.fill(outbox)

        waiting = asyncio.create_task(outbox.append_durable(lines(100, 3100)))
        await asyncio.sleep(0.3)
        assert not waiting.done()  # held in memory only: not safe, not confirmed
        assert outbox.degraded and outbox.disk_errors >= 1
        assert outbox.fallback_lines == 3000 and len(outbox) == 3100

        small_disk.free(outbox)
        await asyncio.wait_for(waiting, 5)  # moved to disk, without anyone asking
        assert not outbox.degraded
        await outbox.append_durable(lines(3100, 3200))  # and new lines go to disk again
    finally:
        outbox.close()
    reopened = DiskOutbox(small_disk.state_dir)
    try:
        batch = reopened.begin(10_000)
        assert batch is not None and batch.lines == lines(0, 3200)
    finally:
        reopened.close()


async def test_lines_in_the_memory_fallback_are_safe_once_influxdb_accepts_them(
    small_disk: TmpfsDisk | PageLimitDisk,
) -> None:
    outbox = DiskOutbox(small_disk.state_dir, retry_interval=0.1)
    try:
        await outbox.append_durable(lines(0, 100))
        small_disk.fill(outbox)
        waiting = asyncio.create_task(outbox.append_durable(lines(100, 3100)))
        await asyncio.sleep(0.1)

        on_disk = await outbox.begin_async(10_000)
        assert on_disk is not None and on_disk.lines == lines(0, 100)  # oldest first
        await outbox.accept_async(on_disk)  # the delete may fail: it is retried
        in_memory = await outbox.begin_async(10_000)
        assert in_memory is not None and in_memory.lines == lines(100, 3100)
        assert not waiting.done()
        await outbox.accept_async(in_memory)
        await asyncio.wait_for(waiting, 2)  # InfluxDB has them: safe
        assert len(outbox) == 0

        small_disk.free(outbox)
        await asyncio.sleep(0.3)
    finally:
        outbox.close()
    reopened = DiskOutbox(small_disk.state_dir)
    try:
        assert len(reopened) == 0  # the failed delete was retried once space came back
    finally:
        reopened.close()


async def test_a_full_memory_fallback_drops_the_oldest_and_says_so(
    small_disk: TmpfsDisk | PageLimitDisk,
) -> None:
    outbox = DiskOutbox(small_disk.state_dir, retry_interval=0.1, fallback_max_bytes=50_000)
    try:
        await outbox.append_durable(lines(0, 10))
        small_disk.fill(outbox)
        with pytest.raises(OutboxDropped):
            await asyncio.wait_for(outbox.append_durable(lines(10, 3010)), 2)
        assert outbox.dropped_fallback > 2000
        assert outbox.stats().dropped_fallback == outbox.dropped_fallback
        small_disk.free(outbox)
    finally:
        outbox.close()
