"""The SQLite side of the disk outbox: schema, pragmas and the few statements it runs.

Plain functions on a connection; the caller (the committer thread, sole owner of the
connection) decides the transactions. One row per line, ids from AUTOINCREMENT so they
only ever grow: a batch is an id range, and a row appended later can never take the id
of a row still in an open batch.
"""

from __future__ import annotations

import math
import sqlite3
import zlib
from collections.abc import Iterable
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS lines (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,       -- wall-clock time of the append (for max_age)
    size INTEGER NOT NULL,  -- UTF-8 bytes of line (for max_bytes)
    crc INTEGER NOT NULL,   -- zlib.crc32 of the UTF-8 line: a damaged page cannot pass
    line TEXT NOT NULL      -- off a changed digit as a reading
)
"""
COLUMNS = ["id", "ts", "size", "crc", "line"]

Row = tuple[int, float, int, int, str]  # as COLUMNS


def connect(path: Path) -> sqlite3.Connection:
    """Open without touching the file's contents (nothing is read before the first query)."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=0.5)
    # Set before the first access: with an exclusive lock WAL keeps its index in heap
    # memory instead of an mmapped -shm file, and a second gateway on the same
    # state_dir fails with "database is locked" instead of interleaving writes.
    conn.execute("PRAGMA locking_mode=EXCLUSIVE")
    conn.execute("PRAGMA cell_size_check=ON")  # cheap defence against corrupt pages
    return conn


def configure(conn: sqlite3.Connection, synchronous: str) -> None:
    mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise sqlite3.OperationalError(f"cannot put the outbox in WAL mode (got {mode})")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA wal_autocheckpoint=0")  # checkpoints are explicit (DiskOutbox)
    conn.execute(SCHEMA)


def totals(conn: sqlite3.Connection) -> tuple[int, int]:
    lines, nbytes = conn.execute("SELECT count(*), coalesce(sum(size), 0) FROM lines").fetchone()
    return int(lines), int(nbytes)


def oldest_ts(conn: sqlite3.Connection, floor: int) -> float | None:
    row = conn.execute("SELECT ts FROM lines WHERE id > ? ORDER BY id LIMIT 1", (floor,)).fetchone()
    return None if row is None else float(row[0])


def crc(line: str) -> int:
    return zlib.crc32(line.encode("utf-8", "surrogatepass"))


def insert(conn: sqlite3.Connection, rows: Iterable[tuple[float, int, str]]) -> None:
    """Insert ``(ts, size, line)`` rows (the checksum is computed here)."""
    conn.executemany(
        "INSERT INTO lines (ts, size, crc, line) VALUES (?, ?, ?, ?)",
        ((ts, size, crc(line), line) for ts, size, line in rows),
    )


def insert_with_ids(conn: sqlite3.Connection, rows: list[Row]) -> None:
    conn.executemany(
        "INSERT OR IGNORE INTO lines (id, ts, size, crc, line) VALUES (?, ?, ?, ?, ?)", rows
    )


def select_batch(conn: sqlite3.Connection, floor: int, max_lines: int) -> list[Row]:
    return conn.execute(
        "SELECT id, ts, size, crc, line FROM lines WHERE id > ? ORDER BY id LIMIT ?",
        (floor, max_lines),
    ).fetchall()


def delete_ids(conn: sqlite3.Connection, ids: list[int]) -> None:
    conn.executemany("DELETE FROM lines WHERE id = ?", [(i,) for i in ids])


def intact(row: tuple[object, ...]) -> bool:
    """A whole row as written: right types, and size and checksum match the line."""
    if len(row) != len(COLUMNS):
        return False
    row_id, ts, size, checksum, line = row
    if not (
        isinstance(row_id, int)
        and isinstance(ts, float | int)
        and isinstance(size, int)
        and isinstance(checksum, int)
        and isinstance(line, str)
    ):
        return False
    try:
        data = line.encode("utf-8", "surrogatepass")
    except UnicodeError:
        return False
    return size == len(data) and checksum == zlib.crc32(data) and math.isfinite(ts)


def drop_oldest(conn: sqlite3.Connection, floor: int, excess: int) -> tuple[int, int]:
    """Delete the oldest rows after ``floor`` until ``excess`` bytes are freed."""
    freed = count = 0
    cutoff = floor
    cur = conn.execute("SELECT id, size FROM lines WHERE id > ? ORDER BY id", (floor,))
    try:
        while freed < excess:
            chunk = cur.fetchmany(512)
            if not chunk:
                break
            for row_id, size in chunk:
                freed += size
                count += 1
                cutoff = row_id
                if freed >= excess:
                    break
    finally:
        cur.close()
    if count:
        conn.execute("DELETE FROM lines WHERE id > ? AND id <= ?", (floor, cutoff))
    return count, freed


def drop_older(conn: sqlite3.Connection, floor: int, before_ts: float) -> tuple[int, int]:
    """Delete the rows after ``floor`` appended before ``before_ts``, scanning from the oldest.

    Stops at the first younger row: rows are in append order, so this is one short scan
    even when the wall clock once stepped back a little.
    """
    freed = count = 0
    cutoff = floor
    cur = conn.execute("SELECT id, ts, size FROM lines WHERE id > ? ORDER BY id", (floor,))
    try:
        done = False
        while not done:
            chunk = cur.fetchmany(512)
            if not chunk:
                break
            for row_id, ts, size in chunk:
                if ts >= before_ts:
                    done = True
                    break
                freed += size
                count += 1
                cutoff = row_id
    finally:
        cur.close()
    if count:
        conn.execute("DELETE FROM lines WHERE id > ? AND id <= ?", (floor, cutoff))
    return count, freed


def delete_upto(conn: sqlite3.Connection, last: int) -> None:
    conn.execute("DELETE FROM lines WHERE id <= ?", (last,))


def checkpoint(conn: sqlite3.Connection, mode: str) -> None:
    busy, _, _ = conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
    if busy:
        raise sqlite3.OperationalError(f"wal_checkpoint({mode}) could not complete")
