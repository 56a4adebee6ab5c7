"""The contract every outbox implements: a FIFO of line-protocol lines with transactions.

Lifecycle (after Telegraf's ``models/buffer.go``)::

    buf.append(lines)             # newest at the back; bounds may drop the oldest (counted)
    buf.commit()                  # everything appended so far is as safe as this buffer gets
    batch = buf.begin(max_lines)  # the oldest lines, not removed: one batch open at a time
    ... write batch.lines to InfluxDB ...
    buf.accept(batch)             # InfluxDB answered 2xx: the lines are forgotten
    buf.reject(batch)             # it did not: the lines are back at the front, same order
    buf.close()

``len(buf)`` counts every line held, including an open batch and lines not committed yet,
so ``len(buf) == 0`` is the cheap "nothing waiting" test of the writer's fast path.
``bytes`` is the UTF-8 size of those lines (storage overhead not included).

Bounds drop the *oldest* lines that are not in the open batch (that batch is being
written; dropping it would save nothing): ``dropped_full`` counts drops for
``max_bytes`` (and ``max_lines``), ``dropped_age`` for ``max_age``. While a batch is
open the bound may be exceeded by at most that batch.

Times are wall-clock seconds (``time.time()``, injectable as ``clock``) because a
line's age must survive a restart; ``oldest_age(now)`` takes the time as an argument.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


class OutboxError(Exception):
    """Base of the outbox's own errors."""


class OutboxDropped(OutboxError):
    """Lines waited for with ``append_durable`` were dropped before they were safe."""


class OutboxClosed(OutboxError):
    """The outbox was closed (or its committer died) before the lines were safe."""


@dataclass(frozen=True, slots=True)
class Batch:
    """The oldest lines of a buffer, taken by :meth:`Buffer.begin`, settled once."""

    id: int
    lines: list[str]
    nbytes: int
    # Where the lines live: "memory", or "disk" with the row ids first..last.
    source: str = "memory"
    first: int = 0
    last: int = 0

    def __len__(self) -> int:
        return len(self.lines)


@runtime_checkable
class Buffer(Protocol):
    """A bounded FIFO of lines with ``begin → accept / reject`` (see the module docstring)."""

    dropped_full: int
    dropped_age: int

    def append(self, lines: list[str]) -> None:
        """Add lines at the back (durable once :meth:`commit` returns, for a disk buffer)."""
        ...

    def commit(self) -> None:
        """Return once every line appended so far is stored (a no-op in memory)."""
        ...

    def begin(self, max_lines: int) -> Batch | None:
        """The oldest ``max_lines`` lines not yet taken, or None when there are none.

        Raises RuntimeError while another batch is open.
        """
        ...

    def accept(self, batch: Batch) -> None:
        """Forget the batch's lines: InfluxDB answered 2xx for them."""
        ...

    def reject(self, batch: Batch) -> None:
        """Put the batch's lines back at the front, to be taken again by the next begin."""
        ...

    def expire(self, now: float) -> int:
        """Drop lines older than ``max_age`` at ``now``; returns how many."""
        ...

    def oldest_age(self, now: float) -> float:
        """Seconds since the oldest line held was appended; 0.0 when empty."""
        ...

    @property
    def bytes(self) -> int: ...

    def __len__(self) -> int: ...

    def close(self) -> None: ...


def line_size(line: str) -> int:
    """Bytes a line weighs against ``max_bytes`` (line protocol is nearly always ASCII)."""
    return len(line) if line.isascii() else len(line.encode("utf-8", "surrogatepass"))
