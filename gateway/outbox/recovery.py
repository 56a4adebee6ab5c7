"""Opening the outbox file whatever state power loss or a stray write left it in.

``open_checked(path)`` runs ``PRAGMA quick_check`` (it reads the whole file: about a
second per 40 MB on a Pi's SD card, once at start). If the file is sound it is used as
is. If not — truncated, garbage, not an outbox at all — it is renamed
``outbox.sqlite3.corrupt-<UTC time>`` (with its ``-wal``, so the pair stays readable),
a fresh outbox is created in its place, and every complete row that can still be read
from the broken file is copied in, with its id (so the order is kept).

Salvage is pure Python and goes through SQLite itself, so rows already accepted
(deleted) do not come back and the WAL's committed frames are included. It walks the
table by id; where a damaged page makes a read fail it probes forward (doubling the
step, then bisecting back) to the first id it can read again. A row is kept only when
it is whole: types right, ``size`` and ``crc`` matching ``line``. Rows on
unreadable pages are lost; the report estimates how many from the ids skipped. Rows the
walk cannot reach because an interior page above them is gone (the usual case for a
truncated file of more than a few thousand rows) are then read from the leaf pages
themselves (``pagescan.py``, as the ``sqlite3`` shell's ``.recover`` does).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from gateway.outbox import pagescan, store

log = logging.getLogger("outpost.outbox")

_MAX_ID = 2**62


@dataclass(slots=True)
class Salvage:
    """What opening a damaged outbox did."""

    problem: str
    moved_to: Path
    recovered: int = 0
    lost_estimate: int = 0  # rows in id ranges that could not be read
    bad_rows: int = 0  # rows read but incomplete or malformed
    skipped: list[tuple[int, int]] = field(default_factory=list)  # unreadable id ranges


def open_checked(path: Path, synchronous: str) -> tuple[sqlite3.Connection, Salvage | None]:
    """A configured connection to a sound outbox at ``path``, salvaging a damaged one."""
    problem = check(path) if path.exists() else None
    if problem is None:
        conn = store.connect(path)
        store.configure(conn, synchronous)
        return conn, None
    aside = move_aside(path)
    conn = store.connect(path)
    store.configure(conn, synchronous)
    report = Salvage(problem=problem, moved_to=aside)
    try:
        salvage(aside, conn, report)
    except Exception:  # never keep the gateway from starting over a broken file
        log.exception("outbox salvage from %s stopped early", aside)
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        report.recovered = 0
    log.warning(
        "outbox %s was damaged (%s): moved to %s; recovered %d readings, lost about %d "
        "(%d malformed rows, unreadable id ranges %s)",
        path,
        problem,
        aside.name,
        report.recovered,
        report.lost_estimate + report.bad_rows,
        report.bad_rows,
        report.skipped[:5],
    )
    return conn, report


def is_corruption(exc: sqlite3.Error) -> bool:
    """Damage in the file, as opposed to a lock, a permission, a full disk or an I/O error."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    return name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB"))


def check(path: Path) -> str | None:
    """None when ``path`` is a sound outbox (or an empty file); else what is wrong.

    Errors that are not damage (locked by another gateway, permissions, I/O) are raised:
    moving a healthy file aside because it is busy would be the worst outcome.
    """
    conn = store.connect(path)
    try:
        rows = conn.execute("PRAGMA quick_check").fetchall()
        if rows != [("ok",)]:
            return "quick_check: " + "; ".join(str(r[0]) for r in rows[:3])
        columns = [r[1] for r in conn.execute("PRAGMA table_info(lines)").fetchall()]
        if columns and columns != store.COLUMNS:
            return f"not an outbox: table lines has columns {columns}"
        return None
    except sqlite3.DatabaseError as exc:
        if is_corruption(exc):
            return str(exc)
        raise
    finally:
        conn.close()


def move_aside(path: Path) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    aside = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while aside.exists():
        n += 1
        aside = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    path.rename(aside)
    for suffix in ("-wal", "-journal"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            side.rename(aside.with_name(aside.name + suffix))
    path.with_name(path.name + "-shm").unlink(missing_ok=True)
    return aside


def salvage(source: Path, dest: sqlite3.Connection, report: Salvage) -> None:
    """Copy every complete readable row of ``source`` into ``dest`` (one transaction)."""
    src: sqlite3.Connection | None = None
    try:
        src = store.connect(source)
        # Lets SQLite read a file shorter than its header says (truncated) instead of
        # calling the whole file corrupt; nothing is ever written through this connection.
        src.execute("PRAGMA writable_schema=ON")
    except sqlite3.Error:
        if src is not None:
            src.close()
        src = None
    dest.execute("BEGIN IMMEDIATE")
    if src is not None:
        try:
            _copy_rows(src, dest, report)
        finally:
            src.close()
    _copy_scanned(source, dest, report)
    dest.execute("COMMIT")


def _copy_scanned(source: Path, dest: sqlite3.Connection, report: Salvage) -> None:
    """Rows the walk could not reach (a lost interior page hides every leaf below it),
    read from the leaf pages themselves (``pagescan.py``): those in the id ranges the walk
    skipped, and those past the last id it read."""
    (top,) = dest.execute("SELECT coalesce(max(id), 0) FROM lines").fetchone()
    ranges = list(report.skipped)

    def skipped(row_id: int) -> bool:
        return any(first <= row_id <= last for first, last in ranges)

    found: dict[int, store.Row] = {}
    for row in pagescan.scan_rows(source):
        if row[0] not in found and (row[0] > top or skipped(row[0])):
            found[row[0]] = row
    if not found:
        return
    store.insert_with_ids(dest, list(found.values()))
    report.recovered += len(found)
    report.lost_estimate -= sum(1 for row_id in found if skipped(row_id))


def _copy_rows(src: sqlite3.Connection, dest: sqlite3.Connection, report: Salvage) -> None:
    try:
        row = src.execute("SELECT seq FROM sqlite_sequence WHERE name = 'lines'").fetchone()
        upper = int(row[0]) if row else _MAX_ID
    except (sqlite3.DatabaseError, TypeError, ValueError):
        upper = _MAX_ID
    next_id = -_MAX_ID
    while next_id <= upper:
        good: list[store.Row] = []
        failed = False
        try:
            cur = src.execute(
                "SELECT id, ts, size, crc, line FROM lines WHERE id >= ? ORDER BY id", (next_id,)
            )
            # Row by row, not fetchmany: a damaged cell fails the step *after* the last good
            # row, and fetchmany would throw away the good rows of its chunk with it.
            for r in cur:
                if not isinstance(r[0], int) or r[0] < next_id:
                    continue  # a damaged b-tree can yield a row twice: keep the first
                if next_id > -_MAX_ID:
                    # Ids of waiting rows are contiguous (accepted rows go from the low
                    # end): a jump means rows on a page the walk stepped over unawares.
                    _skip(report, next_id, r[0] - 1)
                if store.intact(r):
                    good.append(r)
                else:
                    report.bad_rows += 1
                next_id = r[0] + 1
        except sqlite3.DatabaseError:
            failed = True
        if good:
            store.insert_with_ids(dest, good)
            report.recovered += len(good)
        if not failed:
            return
        resume = _first_readable(src, next_id, upper)
        start = max(next_id, 1)
        if resume is None:
            if upper != _MAX_ID and upper >= start:
                _skip(report, start, upper)
            return
        _skip(report, start, resume - 1)
        next_id = resume


def _skip(report: Salvage, first: int, last: int) -> None:
    if last < first:
        return
    report.lost_estimate += last - first + 1
    if report.skipped and report.skipped[-1][1] >= first - 1:
        report.skipped[-1] = (report.skipped[-1][0], last)
    else:
        report.skipped.append((first, last))


def _fails(src: sqlite3.Connection, start: int) -> bool:
    """Whether seeking to ``start`` hits a damaged page (reading the first row found)."""
    try:
        src.execute(
            "SELECT id, ts, size, crc, line FROM lines WHERE id >= ? ORDER BY id LIMIT 1", (start,)
        ).fetchall()
        return False
    except sqlite3.DatabaseError:
        return True


def _first_readable(src: sqlite3.Connection, failing: int, upper: int) -> int | None:
    """The smallest id > ``failing`` from which reading works again, or None."""
    step = 1
    lo = failing
    while True:
        probe = failing + step
        if probe > upper:
            if _fails(src, upper):
                return None
            probe = upper
        if not _fails(src, probe):
            hi = probe
            break
        lo = probe
        if probe == upper:
            return None
        step *= 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _fails(src, mid):
            lo = mid
        else:
            hi = mid
    return hi
