"""The disk outbox's committer thread: group commit, commands, housekeeping, shutdown.

One thread, ``outbox-committer``, owns the SQLite connection (sqlite3 objects must
stay on one thread) and does every disk operation. It wakes on a group's first line,
waits ``commit_interval`` (or until ``commit_lines`` lines) for more, writes the whole
group in one transaction, then runs the commands queued before it (``begin``,
``accept``, …) and its housekeeping: disk retries, ``max_age`` sweeps, checkpoints.
A thread rather than ``run_in_executor``: the group window needs a single owner that
can wait on a condition, and executor threads are not guaranteed to be the same one.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import math
import sqlite3
import time

from gateway.outbox import store
from gateway.outbox.buffer import OutboxClosed
from gateway.outbox.fallback import Fallback, Group
from gateway.outbox.recovery import open_checked

log = logging.getLogger("outpost.outbox")


class Committer(Fallback):
    """The committer thread's loop; the state is :class:`DiskOutbox`'s (see its __init__)."""

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
                group, self._group = self._group, Group()
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

    def _commit_group(self, group: Group) -> None:
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
            if isinstance(g, Group) and not g.future.done():
                g.future.set_exception(
                    OutboxClosed("the outbox closed before these lines were safe")
                )
        for _, fut in commands:
            if fut.set_running_or_notify_cancel():
                fut.set_exception(OutboxClosed("the outbox is closed"))
