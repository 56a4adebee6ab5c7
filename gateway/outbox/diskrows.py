"""The rows on disk, for the disk outbox's committer thread: insert, batches, expiry, checkpoints.

Part of :class:`~gateway.outbox.disk.DiskOutbox`, split by concern: these methods run
only on the committer thread, the sole owner of the SQLite connection, and share the
outbox's state (set up in ``DiskOutbox.__init__``). A write error calls
``_disk_failed``, which puts the outbox in degraded mode; ``fallback.py`` then holds
new lines in memory until the disk takes them again.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import sqlite3
import time

from gateway.outbox import store
from gateway.outbox.buffer import Batch
from gateway.outbox.memory import Item

log = logging.getLogger("outpost.outbox")

_batch_ids = itertools.count(1)
_VACUUM_PAGES = 256  # free pages (1 MiB of 4 KiB pages) worth giving back once empty


class DiskRows:
    """The committer's SQLite operations and the counters they keep."""

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
