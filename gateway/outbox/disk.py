"""DiskOutbox: the durable outbox, one SQLite file (WAL) in ``state_dir``.

Threading. One thread, ``outbox-committer``, owns the SQLite connection (sqlite3
objects must stay on one thread) and does every disk operation. Callers on any
thread append to an in-memory *group* under a lock and return at once; the committer
wakes on the group's first line, waits ``commit_interval`` (or until ``commit_lines``
lines) for more, and writes the whole group in one transaction — one fsync for
thousands of readings (group commit). ``begin`` / ``accept`` / ``reject`` /
``commit`` / ``expire`` are commands the committer runs after committing what was
appended before them; the synchronous forms block the caller for that long (a few
ms, an fsync), so from asyncio use ``append_durable`` and the ``*_async`` forms.
A thread rather than ``run_in_executor``: the group window needs a single owner that
can wait on a condition, and executor threads are not guaranteed to be the same one.

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
import itertools
import logging
import math
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from gateway.outbox import store
from gateway.outbox.buffer import Batch, OutboxClosed, OutboxDropped, line_size
from gateway.outbox.memory import Item, MemoryBuffer
from gateway.outbox.recovery import Salvage, open_checked

log = logging.getLogger("outpost.outbox")

T = TypeVar("T")
_batch_ids = itertools.count(1)
_VACUUM_PAGES = 256  # free pages (1 MiB of 4 KiB pages) worth giving back once empty


class _Group:
    """Lines appended during one commit window, and whoever waits for them."""

    __slots__ = ("future", "items", "nbytes", "remaining", "started")

    def __init__(self) -> None:
        self.items: list[Item] = []
        self.nbytes = 0
        self.future: concurrent.futures.Future[None] = concurrent.futures.Future()
        self.started = 0.0
        self.remaining = 0  # lines still in the memory fallback


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


class DiskOutbox:
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
        self._group = _Group()
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

    # -- the committer thread ---------------------------------------------------------------

    def _run(self, ready: concurrent.futures.Future[None]) -> None:
        try:
            self._conn, self.recovery = open_checked(self.path, self.synchronous)
            self._db_lines, self._db_bytes = store.totals(self._conn)
            self._refresh_oldest()
            self._schedule_expire(time.monotonic())
        except BaseException as exc:
            if self._conn is not None:
                self._conn.close()
            ready.set_exception(exc)
            return
        ready.set_result(None)
        try:
            self._loop()
        except BaseException as exc:
            log.exception("outbox committer stopped")
            self._dead = exc
            self._fail_everything()
        finally:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()

    def _loop(self) -> None:
        while True:
            with self._lock:
                while not (self._commands or self._closing):
                    now = time.monotonic()
                    deadline = min(self._next_retry, self._next_expire)
                    group = self._group
                    if group.items:
                        if len(group.items) >= self.commit_lines:
                            break
                        deadline = min(deadline, group.started + self.commit_interval)
                    if deadline <= now:
                        break
                    self._wake.wait(None if deadline == math.inf else deadline - now)
                group, self._group = self._group, _Group()
                commands, self._commands = self._commands, []
                closing = self._closing
            if group.items:
                self._commit_group(group)
            for fn, fut in commands:
                if fut.set_running_or_notify_cancel():
                    try:
                        fut.set_result(fn())
                    except BaseException as exc:
                        fut.set_exception(exc)
            self._housekeeping(time.monotonic())
            if closing:
                with self._lock:
                    if self._group.items or self._commands:
                        continue  # appended while closing: commit it too
                self._shutdown()
                return

    def _commit_group(self, group: _Group) -> None:
        if not self.degraded:
            try:
                self._insert(group.items)
            except sqlite3.Error as exc:
                self._disk_failed(exc)
            else:
                with self._lock:
                    self._pending_lines -= len(group.items)
                    self._pending_bytes -= group.nbytes
                group.future.set_result(None)
                return
        self._to_fallback(group)

    def _to_fallback(self, group: _Group) -> None:
        group.remaining = len(group.items)
        for item in group.items:
            item.owner = group
        with self._lock:
            self._pending_lines -= len(group.items)
            self._pending_bytes -= group.nbytes
            self.fallback_lines += len(group.items)
            self._fallback.append_items(group.items)

    def _released(self, owner: object, ok: bool) -> None:
        """A fallback line's fate is known: its waiters learn at the first drop or the last ok."""
        assert isinstance(owner, _Group)
        owner.remaining -= 1
        if owner.future.done():
            return
        if not ok:
            owner.future.set_exception(
                OutboxDropped("lines dropped from the full memory fallback before they were safe")
            )
        elif owner.remaining == 0:
            owner.future.set_result(None)

    def _begin(self, max_lines: int) -> Batch | None:
        if self._open is not None or self._fallback.open_batch is not None:
            raise RuntimeError("a batch is still open: accept or reject it first")
        if self._db_lines > 0 and max_lines > 0:
            rows = store.select_batch(self._db(), self._accepted_upto, max_lines)
            good = [r for r in rows if store.intact(r)]
            if len(good) < len(rows):
                self._drop_damaged([r for r in rows if not store.intact(r)])
            if good:
                self._open = Batch(
                    id=next(_batch_ids),
                    lines=[r[4] for r in good],
                    nbytes=sum(r[2] for r in good),
                    source="disk",
                    first=good[0][0],
                    last=rows[-1][0],
                )
                return self._open
            if rows:  # all damaged: skip past them as if accepted, and look further
                self._accepted_upto = rows[-1][0]
                return self._begin(max_lines)
        with self._lock:
            return self._fallback.begin(max_lines)

    def _drop_damaged(self, rows: list[store.Row]) -> None:
        """Rows whose checksum fails (a damaged page that quick_check let through)."""
        sizes = sum(r[2] if isinstance(r[2], int) else 0 for r in rows)
        with contextlib.suppress(sqlite3.Error):
            store.delete_ids(self._db(), [r[0] for r in rows])
        with self._lock:
            self._db_lines -= len(rows)
            self._db_bytes -= sizes
            self.dropped_damaged += len(rows)
        log.error("outbox %s: dropped %d damaged readings (checksum)", self.path, len(rows))

    def _accept(self, batch: Batch) -> None:
        if batch.source == "memory":
            with self._lock:
                self._fallback.accept(batch)
            return
        self._settle(batch)
        with self._lock:
            self._db_lines -= len(batch.lines)
            self._db_bytes -= batch.nbytes
            self._accepted_upto = batch.last
        self._delete_accepted(batch.nbytes)
        with self._lock:
            self._refresh_oldest()

    def _reject(self, batch: Batch) -> None:
        if batch.source == "memory":
            with self._lock:
                self._fallback.reject(batch)
        else:
            self._settle(batch)

    def _settle(self, batch: Batch) -> None:
        if self._open is None or self._open.id != batch.id:
            raise ValueError(f"batch {batch.id} is not the open batch of this outbox")
        self._open = None

    def _delete_accepted(self, nbytes: int = 0) -> None:
        conn = self._db()
        try:
            if self.synchronous == "FULL":
                # A lost delete only re-sends points InfluxDB already has: no fsync for it.
                conn.execute("PRAGMA synchronous=NORMAL")
            store.delete_upto(conn, self._accepted_upto)
            self._delete_due = False
            self._written_since_checkpoint += nbytes  # rewritten pages, roughly
        except sqlite3.Error as exc:
            self._delete_due = True  # begin skips these ids; retried by housekeeping
            self._disk_failed(exc)
        finally:
            if self.synchronous == "FULL":
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("PRAGMA synchronous=FULL")

    def _expire(self, now: float) -> int:
        if self.max_age is None:
            return 0
        with self._lock:
            n = self._fallback.expire(now)
        cutoff = now - self.max_age
        if self._db_lines and self._db_oldest is not None and self._db_oldest < cutoff:
            conn = self._db()
            try:
                conn.execute("BEGIN IMMEDIATE")
                dropped, freed = store.drop_older(conn, self._floor(), cutoff)
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                self._disk_failed(exc)
                return n
            with self._lock:
                self._db_lines -= dropped
                self._db_bytes -= freed
                self.dropped_age += dropped
                self._refresh_oldest()
            if dropped:
                self._log_drop("age", dropped)
            n += dropped
        return n

    def _housekeeping(self, now: float) -> None:
        if now >= self._next_retry:
            self._next_retry = math.inf
            if self._delete_due:
                self._delete_accepted()
            if self.degraded:
                self._move_fallback_to_disk()
            if self.degraded or self._delete_due:
                self._next_retry = now + self.retry_interval
        if now >= self._next_expire:
            self._expire(self._clock())
        self._schedule_expire(now)
        with self._lock:
            empty = self._db_lines == 0 and self._pending_lines == 0
        if self._written_since_checkpoint and (
            empty or self._written_since_checkpoint >= self.checkpoint_bytes
        ):
            self._checkpoint(empty)

    def _schedule_expire(self, now: float) -> None:
        held = self._db_lines or len(self._fallback)
        if self.max_age is None or not held:
            self._next_expire = math.inf
        elif self._next_expire == math.inf or now >= self._next_expire:
            self._next_expire = now + self.expire_interval

    def _move_fallback_to_disk(self) -> None:
        """Retry the disk: move the fallback there, oldest first, in commit-sized chunks."""
        moved: list[Item] = []
        try:
            while True:
                with self._lock:
                    items = self._fallback.take_oldest(self.commit_lines)
                if not items:
                    break
                try:
                    self._insert(items)
                except sqlite3.Error as exc:
                    with self._lock:
                        self._fallback.put_back(items)
                    self.disk_errors += 1
                    log.debug("outbox disk still failing: %s", exc)
                    return
                moved += items
            if len(self._fallback) == 0:
                self.degraded = False
                log.warning("outbox disk writable again: back to disk (%s)", self.path)
            else:
                self._next_retry = time.monotonic()  # only an open batch is left: soon
        finally:
            for item in moved:  # their waiters learn it once the state above is settled
                if item.owner is not None:
                    self._released(item.owner, True)

    def _insert(self, items: list[Item]) -> None:
        """Write lines in one transaction (one fsync), dropping the oldest past max_bytes."""
        conn = self._db()
        nbytes = sum(i.size for i in items)
        try:
            conn.execute("BEGIN IMMEDIATE")
            store.insert(conn, ((i.ts, i.size, i.line) for i in items))
            dropped, freed = 0, 0
            excess = self._db_bytes + nbytes - self.max_bytes
            if excess > 0:
                dropped, freed = store.drop_oldest(conn, self._floor(), excess)
            conn.execute("COMMIT")
        except sqlite3.Error:
            self._rollback()
            raise
        with self._lock:
            self._db_lines += len(items) - dropped
            self._db_bytes += nbytes - freed
            self.dropped_full += dropped
            self.commits += 1
            if self._db_oldest is None or dropped:
                self._refresh_oldest()
        self._written_since_checkpoint += nbytes
        if dropped:
            self._log_drop("full", dropped)

    def _checkpoint(self, empty: bool) -> None:
        conn = self._db()
        try:
            if empty:
                # Give the space back (VACUUM of an empty table rewrites a few pages); not
                # for a little, so a flapping InfluxDB does not rewrite the file each time.
                (free,) = conn.execute("PRAGMA freelist_count").fetchone()
                if free >= _VACUUM_PAGES:
                    conn.execute("VACUUM")
                store.checkpoint(conn, "TRUNCATE")
            else:
                store.checkpoint(conn, "RESTART")
            self.checkpoints += 1
            self._written_since_checkpoint = 0
        except sqlite3.Error as exc:
            log.debug("outbox checkpoint failed (retried later): %s", exc)

    def _disk_failed(self, exc: sqlite3.Error) -> None:
        self.disk_errors += 1
        if self._next_retry == math.inf:
            self._next_retry = time.monotonic() + self.retry_interval
        if not self.degraded and not isinstance(exc, sqlite3.IntegrityError):
            self.degraded = True
            log.error(
                "outbox cannot write %s (%s): holding new readings in memory (at most %d "
                "bytes) and retrying every %gs",
                self.path,
                exc,
                self._fallback.max_bytes,
                self.retry_interval,
            )

    def _shutdown(self) -> None:
        if self._delete_due:
            self._delete_accepted()
        if self.degraded:
            self._move_fallback_to_disk()  # a last try: the disk may have space again
        with contextlib.suppress(sqlite3.Error):
            self._checkpoint(self._db_lines == 0)
        if len(self._fallback):
            log.error(
                "outbox closed with %d readings only in memory (disk unwritable): lost",
                len(self._fallback),
            )
        self._fail_everything()

    def _fail_everything(self) -> None:
        with self._lock:
            self._closing = True
            groups = [self._group]
            commands, self._commands = self._commands, []
        owners = {id(i.owner): i.owner for i in self._fallback.drop_all() if i.owner is not None}
        for g in [*groups, *owners.values()]:
            if isinstance(g, _Group) and not g.future.done():
                g.future.set_exception(
                    OutboxClosed("the outbox closed before these lines were safe")
                )
        for _, fut in commands:
            if fut.set_running_or_notify_cancel():
                fut.set_exception(OutboxClosed("the outbox is closed"))

    # -- helpers ----------------------------------------------------------------------------

    def _db(self) -> sqlite3.Connection:
        assert self._conn is not None
        return self._conn

    def _floor(self) -> int:
        """Rows at or below this id are accepted or in the open batch: never dropped."""
        return max(self._accepted_upto, self._open.last if self._open else 0)

    def _refresh_oldest(self) -> None:
        self._db_oldest = (
            store.oldest_ts(self._db(), self._accepted_upto) if self._db_lines else None
        )

    def _rollback(self) -> None:
        conn = self._db()
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")

    def _log_drop(self, reason: str, n: int) -> None:
        log.warning("outbox %s: dropped the %d oldest readings (%s bound)", self.path, n, reason)


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
