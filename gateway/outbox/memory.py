"""MemoryBuffer: the outbox without a disk, and the disk outbox's fallback when the disk fails.

Bounded by ``max_bytes`` (and optionally ``max_lines`` and ``max_age``); when full it
drops the oldest lines outside the open batch and counts them. Nothing survives the
process: use it where losing the backlog on restart is acceptable, or as a fallback.

Not thread-safe: one owner (the event loop, or the disk outbox's committer thread).

Each line may carry an ``owner`` (the disk outbox's commit group): ``on_release(owner,
ok)`` is called when the line leaves the buffer for good — ``ok`` when accepted,
not ``ok`` when dropped — so whoever waits for the line can be told.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable, Iterable

from gateway.outbox.buffer import Batch, line_size

Clock = Callable[[], float]
OnRelease = Callable[[object, bool], None]

_batch_ids = itertools.count(1)


class Item:
    __slots__ = ("line", "owner", "size", "ts")

    def __init__(self, ts: float, line: str, size: int, owner: object | None = None) -> None:
        self.ts, self.line, self.size, self.owner = ts, line, size, owner


class MemoryBuffer:
    def __init__(
        self,
        max_bytes: int,
        *,
        max_lines: int | None = None,
        max_age: float | None = None,
        clock: Clock = time.time,
        on_release: OnRelease | None = None,
    ) -> None:
        self.max_bytes = max_bytes
        self.max_lines = max_lines
        self.max_age = max_age
        self._clock = clock
        self._on_release = on_release
        self._items: deque[Item] = deque()
        self._open: Batch | None = None
        self._open_items: list[Item] = []
        self._bytes = 0  # includes the open batch
        self.dropped_full = 0
        self.dropped_age = 0
        self.appended = 0

    # -- Buffer ---------------------------------------------------------------------------

    def append(self, lines: list[str], owner: object | None = None) -> None:
        now = self._clock()
        self.append_items(Item(now, line, line_size(line), owner) for line in lines)

    def commit(self) -> None:
        pass

    def begin(self, max_lines: int) -> Batch | None:
        if self._open is not None:
            raise RuntimeError(f"batch {self._open.id} is still open: accept or reject it first")
        if not self._items or max_lines <= 0:
            return None
        n = min(max_lines, len(self._items))
        items = [self._items.popleft() for _ in range(n)]
        self._open_items = items
        self._open = Batch(
            id=next(_batch_ids), lines=[i.line for i in items], nbytes=sum(i.size for i in items)
        )
        return self._open

    def accept(self, batch: Batch) -> None:
        items = self._settle(batch)
        self._bytes -= batch.nbytes
        if self._on_release is not None:
            for item in items:
                if item.owner is not None:
                    self._on_release(item.owner, True)

    def reject(self, batch: Batch) -> None:
        items = self._settle(batch)
        self._items.extendleft(reversed(items))
        self._enforce_bounds()

    def expire(self, now: float) -> int:
        if self.max_age is None:
            return 0
        cutoff = now - self.max_age
        dropped: list[Item] = []
        while self._items and self._items[0].ts < cutoff:
            dropped.append(self._items.popleft())
        self._bytes -= sum(i.size for i in dropped)
        self.dropped_age += len(dropped)
        self._released(dropped)
        return len(dropped)

    def oldest_age(self, now: float) -> float:
        oldest = self.oldest_ts()
        return 0.0 if oldest is None else max(0.0, now - oldest)

    @property
    def bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._items) + len(self._open_items)

    def close(self) -> None:
        pass

    # -- for the disk outbox --------------------------------------------------------------

    def oldest_ts(self) -> float | None:
        if self._open_items:
            return self._open_items[0].ts
        return self._items[0].ts if self._items else None

    def append_items(self, items: Iterable[Item]) -> None:
        for item in items:
            self._items.append(item)
            self._bytes += item.size
            self.appended += 1
        self._enforce_bounds()
        self.expire(self._clock())

    def take_oldest(self, n: int) -> list[Item]:
        """Remove up to ``n`` of the oldest lines outside the open batch (to move them)."""
        items = [self._items.popleft() for _ in range(min(n, len(self._items)))]
        self._bytes -= sum(i.size for i in items)
        return items

    def put_back(self, items: list[Item]) -> None:
        """Undo :meth:`take_oldest` (the move failed)."""
        self._items.extendleft(reversed(items))
        self._bytes += sum(i.size for i in items)

    def drop_all(self) -> list[Item]:
        """Empty the buffer (at close); returns what was held."""
        items = self._open_items + list(self._items)
        self._open, self._open_items = None, []
        self._items.clear()
        self._bytes = 0
        return items

    @property
    def open_batch(self) -> Batch | None:
        return self._open

    # -- internals ------------------------------------------------------------------------

    def _settle(self, batch: Batch) -> list[Item]:
        if self._open is None or batch.id != self._open.id:
            raise ValueError(f"batch {batch.id} is not the open batch of this buffer")
        items = self._open_items
        self._open, self._open_items = None, []
        return items

    def _enforce_bounds(self) -> None:
        dropped: list[Item] = []
        while self._items and (
            self._bytes > self.max_bytes
            or (self.max_lines is not None and len(self) > self.max_lines)
        ):
            item = self._items.popleft()
            self._bytes -= item.size
            dropped.append(item)
        self.dropped_full += len(dropped)
        self._released(dropped)

    def _released(self, dropped: list[Item]) -> None:
        if not dropped:
            return
        if self._on_release is not None:
            for item in dropped:
                if item.owner is not None:
                    self._on_release(item.owner, False)
