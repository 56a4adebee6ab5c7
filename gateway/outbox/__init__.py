"""The outbox: where readings wait, durably, until InfluxDB has answered 2xx for them.

- :class:`Buffer` — the contract (append → begin → accept / reject), lifecycle in
  ``buffer.py``.
- :class:`MemoryBuffer` — bounded, in memory; also the disk outbox's fallback.
- :class:`DiskOutbox` — SQLite (WAL) in ``state_dir/outbox.sqlite3``, group commit,
  ``append_durable``, recovery of damaged files, memory fallback on a full disk.
- :func:`drain` / :class:`RateLimit` — backfill at a capped rate.
"""

from gateway.outbox.backfill import RateLimit, drain
from gateway.outbox.buffer import Batch, Buffer, OutboxClosed, OutboxDropped, OutboxError
from gateway.outbox.disk import DiskOutbox, OutboxStats
from gateway.outbox.memory import MemoryBuffer
from gateway.outbox.recovery import Salvage

__all__ = [
    "Batch",
    "Buffer",
    "DiskOutbox",
    "MemoryBuffer",
    "OutboxClosed",
    "OutboxDropped",
    "OutboxError",
    "OutboxStats",
    "RateLimit",
    "Salvage",
    "drain",
]
