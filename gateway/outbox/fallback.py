"""The disk outbox's memory fallback: where lines go while the disk refuses writes.

A commit group the disk refused moves, line by line, into the bounded
:class:`~gateway.outbox.memory.MemoryBuffer` (each line owned by its group), and every
``retry_interval`` the committer moves the fallback back to disk, oldest first. A
group's waiters learn the fate of its lines here: safe once the last one is on disk
or accepted, :class:`OutboxDropped` at the first one the full fallback drops.
"""

from __future__ import annotations

import concurrent.futures
import logging
import sqlite3
import time

from gateway.outbox.buffer import OutboxDropped
from gateway.outbox.diskrows import DiskRows
from gateway.outbox.memory import Item

log = logging.getLogger("outpost.outbox")


class Group:
    """Lines appended during one commit window, and whoever waits for them."""

    __slots__ = ("future", "items", "nbytes", "remaining", "started")

    def __init__(self) -> None:
        self.items: list[Item] = []
        self.nbytes = 0
        self.future: concurrent.futures.Future[None] = concurrent.futures.Future()
        self.started = 0.0
        self.remaining = 0  # lines still in the memory fallback


class Fallback(DiskRows):
    """Moving lines into the memory fallback and back to disk (committer thread)."""

    def _to_fallback(self, group: Group) -> None:
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
        assert isinstance(owner, Group)
        owner.remaining -= 1
        if owner.future.done():
            return
        if not ok:
            owner.future.set_exception(
                OutboxDropped("lines dropped from the full memory fallback before they were safe")
            )
        elif owner.remaining == 0:
            owner.future.set_result(None)

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
