"""DiskOutbox: the durable outbox, one SQLite file (WAL) in ``state_dir``.

Threading. Callers on any thread append to an in-memory *group* under a lock and
return at once; the ``outbox-committer`` thread (``committer.py``) writes each group
in one transaction — one fsync for thousands of readings (group commit). ``begin`` /
``accept`` / ``reject`` / ``commit`` / ``expire`` are commands the committer runs
after committing what was appended before them; the synchronous forms block the
caller for that long (a few ms, an fsync), so from asyncio use ``append_durable`` and
the ``*_async`` forms.

Durability. ``append_durable`` returns once its lines are committed. With
``synchronous="FULL"`` (the default) each commit fsyncs the WAL, so a returned
``append_durable`` survives power loss (on storage that honours fsync; cheap SD cards
may not). With ``"NORMAL"`` commits are not fsynced: they survive a crash of the
process, not of the machine — the last commits since the previous checkpoint can be
lost on power loss, though the file is never corrupted by it. Lines appended with
plain ``append`` and not yet committed are lost by any crash. Deletes (accepted
batches) are never fsynced on their own: losing one re-sends the batch, which
InfluxDB stores as the same points (they carry timestamps).

Checkpoints are explicit (``wal_autocheckpoint=0``): ``RESTART`` once
``checkpoint_bytes`` were written since the last one, and ``TRUNCATE`` (after a
VACUUM) when the outbox becomes empty, so a drained outbox gives its disk
space back and a healthy gateway's files stop changing.

Disk full, or any write error: the group goes to a bounded in-memory fallback
(``fallback_max_bytes``), new appends follow it there, and every ``retry_interval``
the committer moves the fallback back to disk, oldest first, and leaves degraded mode
once it is empty. ``append_durable`` on lines in the fallback returns when they are
safe — moved to disk, or accepted after InfluxDB's 2xx — or raises
:class:`OutboxDropped` when the fallback had to drop them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import math
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from gateway.outbox.buffer import Batch, OutboxClosed, line_size
from gateway.outbox.committer import Committer
from gateway.outbox.fallback import Group
from gateway.outbox.memory import Item, MemoryBuffer
from gateway.outbox.recovery import Salvage

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class OutboxStats:
    """A snapshot for metrics (gauges: lines, bytes, oldest_age; the rest are counters)."""

    lines: int
    bytes: int
    oldest_age: float
    dropped_full: int
    dropped_age: int
    dropped_fallback: int
    dropped_damaged: int
    commits: int
    fsyncs: int
    checkpoints: int
    disk_errors: int
    fallback_lines: int  # lines that went to the memory fallback
    degraded: bool


class DiskOutbox(Committer):
    """The durable outbox: the callers' side (any thread); the committer does the disk.

    The committer thread's parts are layered below it, one concern each:
    ``committer.py`` (the loop), ``fallback.py`` (the memory fallback), ``diskrows.py``
    (the SQLite rows).
    """

    def __init__(
        self,
        state_dir: str | Path,
        *,
        max_bytes: int = 256 * 1024**2,
        max_age: float | None = 7 * 86400.0,
        commit_interval: float = 0.005,
        commit_lines: int = 5000,
        synchronous: Literal["FULL", "NORMAL"] = "FULL",
        fallback_max_bytes: int = 16 * 1024**2,
        retry_interval: float = 5.0,
        checkpoint_bytes: int = 4 * 1024**2,
        expire_interval: float = 1.0,
        clock: Callable[[], float] = time.time,
        filename: str = "outbox.sqlite3",
    ) -> None:
        self.path = Path(state_dir) / filename
        self.max_bytes = max_bytes
        self.max_age = max_age
        self.commit_interval = commit_interval
        self.commit_lines = commit_lines
        self.synchronous = synchronous
        self.retry_interval = retry_interval
        self.checkpoint_bytes = checkpoint_bytes
        self.expire_interval = expire_interval  # s between max_age sweeps while lines are held
        self._clock = clock
        self.recovery: Salvage | None = None  # set when the file was damaged at open
        # Counters (read them as attributes; see stats()).
        self.dropped_full = 0
        self.dropped_age = 0
        self.dropped_damaged = 0
        self.commits = 0
        self.checkpoints = 0
        self.disk_errors = 0
        self.fallback_lines = 0
        self.degraded = False
        # State shared with callers, guarded by _lock.
        self._lock = threading.RLock()  # future callbacks may re-enter
        self._wake = threading.Condition(self._lock)
        self._group = Group()
        self._pending_lines = 0  # appended, not yet on disk nor in the fallback
        self._pending_bytes = 0
        self._commands: list[tuple[Callable[[], Any], concurrent.futures.Future[Any]]] = []
        self._closing = False
        self._dead: BaseException | None = None
        self._db_lines = 0  # rows on disk not yet accepted (open batch included)
        self._db_bytes = 0
        self._db_oldest: float | None = None
        # Committer-thread state.
        self._fallback = MemoryBuffer(
            fallback_max_bytes, max_age=max_age, clock=clock, on_release=self._released
        )
        self._conn: sqlite3.Connection | None = None
        self._open: Batch | None = None  # open disk batch
        self._accepted_upto = 0  # rows with id <= this are accepted (maybe not deleted yet)
        self._delete_due = False
        self._written_since_checkpoint = 0
        self._next_retry = math.inf
        self._next_expire = math.inf
        path = self.path
        path.parent.mkdir(parents=True, exist_ok=True)
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name="outbox-committer", daemon=True
        )
        self._thread.start()
        ready.result()

    # -- appending ------------------------------------------------------------------------

    def append(self, lines: list[str]) -> None:
        """Queue lines for the next group commit; returns at once (not durable yet)."""
        self._append(lines)

    async def append_durable(self, lines: list[str]) -> None:
        """Return once ``lines`` are safe: committed to disk (see the module docstring).

        Raises OutboxDropped if the memory fallback dropped them first, OutboxClosed if
        the outbox closed first. Cancelling the wait does not withdraw the lines.
        """
        if lines:
            await _wrap(self._append(lines))

    def _append(self, lines: list[str]) -> concurrent.futures.Future[None]:
        now = self._clock()
        items = [Item(now, line, line_size(line)) for line in lines]
        nbytes = sum(i.size for i in items)
        with self._lock:
            if self._closing or self._dead is not None:
                raise OutboxClosed("the outbox is closed")
            group = self._group
            if not group.items:
                group.started = time.monotonic()
                self._wake.notify()
            group.items.extend(items)
            group.nbytes += nbytes
            self._pending_lines += len(items)
            self._pending_bytes += nbytes
            if len(group.items) >= self.commit_lines:
                self._wake.notify()
            return group.future

    # -- transactions -----------------------------------------------------------------------

    def commit(self) -> None:
        """Return once everything appended so far is on disk (or in the fallback)."""
        self._call(lambda: None)

    def begin(self, max_lines: int) -> Batch | None:
        return self._call(lambda: self._begin(max_lines))

    def accept(self, batch: Batch) -> None:
        self._call(lambda: self._accept(batch))

    def reject(self, batch: Batch) -> None:
        self._call(lambda: self._reject(batch))

    def expire(self, now: float) -> int:
        return self._call(lambda: self._expire(now))

    async def commit_async(self) -> None:
        await _wrap(self._submit(lambda: None))

    async def begin_async(self, max_lines: int) -> Batch | None:
        return await _wrap(self._submit(lambda: self._begin(max_lines)))

    async def accept_async(self, batch: Batch) -> None:
        await _wrap(self._submit(lambda: self._accept(batch)))

    async def reject_async(self, batch: Batch) -> None:
        await _wrap(self._submit(lambda: self._reject(batch)))

    # -- observing ------------------------------------------------------------------------

    def __len__(self) -> int:
        with self._lock:
            return self._pending_lines + self._db_lines + len(self._fallback)

    @property
    def bytes(self) -> int:
        with self._lock:
            return self._pending_bytes + self._db_bytes + self._fallback.bytes

    def oldest_age(self, now: float) -> float:
        with self._lock:
            oldest = self._db_oldest
            if oldest is None:
                oldest = self._fallback.oldest_ts()
            if oldest is None and self._group.items:
                oldest = self._group.items[0].ts
        return 0.0 if oldest is None else max(0.0, now - oldest)

    @property
    def dropped_fallback(self) -> int:
        return self._fallback.dropped_full + self._fallback.dropped_age

    @property
    def fsyncs(self) -> int:
        """fsync calls SQLite makes for us: one per commit with FULL, two per checkpoint."""
        return (self.commits if self.synchronous == "FULL" else 0) + 2 * self.checkpoints

    def stats(self, now: float | None = None) -> OutboxStats:
        now = self._clock() if now is None else now
        return OutboxStats(
            lines=len(self),
            bytes=self.bytes,
            oldest_age=self.oldest_age(now),
            dropped_full=self.dropped_full,
            dropped_age=self.dropped_age,
            dropped_fallback=self.dropped_fallback,
            dropped_damaged=self.dropped_damaged,
            commits=self.commits,
            fsyncs=self.fsyncs,
            checkpoints=self.checkpoints,
            disk_errors=self.disk_errors,
            fallback_lines=self.fallback_lines,
            degraded=self.degraded,
        )

    def close(self) -> None:
        """Commit what was appended, checkpoint, and stop the committer. Idempotent."""
        with self._lock:
            self._closing = True
            self._wake.notify()
        if threading.current_thread() is not self._thread:
            self._thread.join()

    # -- calling the committer ------------------------------------------------------------

    def _submit(self, fn: Callable[[], T]) -> concurrent.futures.Future[T]:
        fut: concurrent.futures.Future[T] = concurrent.futures.Future()
        with self._lock:
            if self._closing or self._dead is not None:
                raise OutboxClosed("the outbox is closed")
            self._commands.append((fn, fut))
            self._wake.notify()
        return fut

    def _call(self, fn: Callable[[], T]) -> T:
        if threading.current_thread() is self._thread:
            raise RuntimeError("outbox methods must not be called from its own callbacks")
        return self._submit(fn).result()


async def _wrap(fut: concurrent.futures.Future[T]) -> T:
    """Await a committer future without letting a cancelled waiter cancel it for others."""
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[T] = loop.create_future()

    def copy(_: concurrent.futures.Future[T]) -> None:
        if waiter.done():
            return
        exc = fut.exception()
        if exc is not None:
            waiter.set_exception(exc)
        else:
            waiter.set_result(fut.result())

    def done(_: concurrent.futures.Future[T]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(copy, fut)

    fut.add_done_callback(done)
    return await waiter
