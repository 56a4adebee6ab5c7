"""The event journal: an append-only SQLite log in ``state_dir`` (event sourcing).

Every alert transition (and, with the actions, every command, acknowledgement,
refusal and notification) is appended as one row carrying the event as the
world saw it (``payload``) and, for alerts, the full alert record after it
(``state``). The current alert state is rebuilt from the journal at start:
the last row per (rule, device) wins. ``checkpoint`` rows, written at shutdown,
record what changed without an event (a ``keep_firing_for`` hold in progress).

The latest value of every (device, metric) is kept beside it (``series``), so
``absent()`` and cross-metric references survive a restart.

Writes are few (transitions, not readings), so the journal writes on the
event loop's thread; WAL with ``synchronous=NORMAL`` keeps each commit to a
write without an fsync, durable across a process crash (a power cut can lose
the last commits, never corrupt the file).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rules import StoredAlert, StoredSeries

SCHEMA = """
CREATE TABLE IF NOT EXISTS journal (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts INTEGER NOT NULL,
    kind TEXT NOT NULL,
    rule TEXT,
    device TEXT,
    trace_id TEXT,
    payload TEXT NOT NULL,
    state TEXT
);
CREATE INDEX IF NOT EXISTS journal_trace ON journal(trace_id);
CREATE INDEX IF NOT EXISTS journal_ts ON journal(ts);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS series (
    device TEXT NOT NULL,
    metric TEXT NOT NULL,
    ts INTEGER NOT NULL,
    value TEXT NOT NULL,
    tags TEXT NOT NULL,
    PRIMARY KEY (device, metric)
);
"""

FILE_NAME = "journal.sqlite3"


@dataclass(frozen=True, slots=True)
class Entry:
    id: int
    ts: int
    kind: str
    rule: str | None
    device: str | None
    trace_id: str | None
    payload: dict[str, Any]


class Journal:
    def __init__(
        self, state_dir: str | Path, *, retention: float = 30 * 86400, readonly: bool = False
    ) -> None:
        self.path = Path(state_dir) / FILE_NAME
        self.retention = retention
        if readonly:
            self._db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
            self.prune()

    @property
    def db(self) -> sqlite3.Connection:
        """The connection, for stores that live in the same file (silences)."""
        return self._db

    @staticmethod
    def now() -> int:
        return time.time_ns()

    def close(self) -> None:
        self._db.close()

    def mark_alive(self, now: int | None = None) -> None:
        """Note that the gateway was running (and hearing) at ``now``."""
        self._db.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('alive', ?)", (now or time.time_ns(),)
        )
        self._db.commit()

    def last_alive(self) -> int | None:
        """When the previous run was last known to be running (None: first run)."""
        row = self._db.execute("SELECT value FROM meta WHERE key = 'alive'").fetchone()
        return int(row[0]) if row else None

    # writing -----------------------------------------------------------------

    def append(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        rule: str | None = None,
        device: str | None = None,
        trace_id: str | None = None,
        state: dict[str, Any] | None = None,
        ts: int | None = None,
    ) -> None:
        self._db.execute(
            "INSERT INTO journal (ts, kind, rule, device, trace_id, payload, state) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                ts or time.time_ns(),
                kind,
                rule,
                device,
                trace_id or None,
                json.dumps(payload, ensure_ascii=False),
                None if state is None else json.dumps(state, ensure_ascii=False),
            ),
        )
        self._db.commit()

    def checkpoint(self, alerts: Iterable[StoredAlert], series: Iterable[StoredSeries]) -> None:
        """Record alert records that differ from their last journaled state, and all series."""
        latest = {(a.rule, a.device): a.to_dict() for a in self.alerts()}
        now = time.time_ns()
        rows = []
        for alert in alerts:
            state = alert.to_dict()
            if latest.get((alert.rule, alert.device)) != state:
                rows.append(
                    (
                        now,
                        "checkpoint",
                        alert.rule,
                        alert.device,
                        None,
                        "{}",
                        json.dumps(state, ensure_ascii=False),
                    )
                )
        self._db.executemany(
            "INSERT INTO journal (ts, kind, rule, device, trace_id, payload, state) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        self._db.executemany(
            "INSERT OR REPLACE INTO series (device, metric, ts, value, tags) VALUES (?,?,?,?,?)",
            [
                (s.device, s.metric, s.ts, json.dumps(s.value), json.dumps(dict(s.tags)))
                for s in series
            ],
        )
        self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('alive', ?)", (now,))
        self._db.commit()

    def prune(self, now: int | None = None) -> int:
        """Forget journal rows older than the retention (keeping each alert's last state)."""
        cutoff = (now or time.time_ns()) - int(self.retention * 1e9)
        cursor = self._db.execute(
            "DELETE FROM journal WHERE ts < ? AND id NOT IN ("
            " SELECT max(id) FROM journal WHERE state IS NOT NULL GROUP BY rule, device)",
            (cutoff,),
        )
        self._db.commit()
        return cursor.rowcount

    # reading -----------------------------------------------------------------

    def alerts(self) -> list[StoredAlert]:
        """The current alert records, rebuilt from the journal (last state per alert)."""
        rows = self._db.execute(
            "SELECT state FROM journal WHERE id IN ("
            " SELECT max(id) FROM journal WHERE state IS NOT NULL GROUP BY rule, device)"
            " ORDER BY id"
        )
        return [StoredAlert.from_dict(json.loads(state)) for (state,) in rows]

    def series(self) -> list[StoredSeries]:
        rows = self._db.execute("SELECT device, metric, ts, value, tags FROM series")
        return [StoredSeries(d, m, ts, json.loads(v), json.loads(t)) for d, m, ts, v, t in rows]

    def head(self) -> int:
        """Id of the newest journal entry (cheap: SQLite's rowid); 0 when empty."""
        row = self.db.execute("SELECT max(id) FROM journal").fetchone()
        return int(row[0] or 0)

    def entries(
        self,
        *,
        since_ns: int | None = None,
        trace_id: str | None = None,
        limit: int | None = None,
        kinds: tuple[str, ...] = (),
        rule: str | None = None,
    ) -> Iterator[Entry]:
        """Journal rows in order (checkpoints left out), filtered as asked."""
        query = "SELECT id, ts, kind, rule, device, trace_id, payload FROM journal WHERE 1=1"
        args: list[Any] = []
        if kinds:
            query += f" AND kind IN ({','.join('?' * len(kinds))})"
            args.extend(kinds)
        if rule is not None:
            query += " AND rule = ?"
            args.append(rule)
        if since_ns is not None:
            query += " AND ts >= ?"
            args.append(since_ns)
        if trace_id:
            query += " AND trace_id = ?"
            args.append(trace_id)
        query += " AND kind != 'checkpoint' ORDER BY id"
        if limit:
            query = f"SELECT * FROM ({query} DESC LIMIT {int(limit)}) ORDER BY id"
        for row in self._db.execute(query, args):
            yield Entry(row[0], row[1], row[2], row[3], row[4], row[5], json.loads(row[6]))
