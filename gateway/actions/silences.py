"""Silences: mute notifications for a rule and/or device for a while.

A silence matches by glob (``*``, ``?``) on the rule name and on the device id;
while it lasts, matching alerts are still evaluated, published on MQTT and
journaled — only notifiers (webhooks, the log notifier) stay quiet, and each
muted notification is journaled as such. Silences live in the journal's
SQLite file, so they survive restarts; expired ones are forgotten.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from rules import durations, rfc3339

SCHEMA = """
CREATE TABLE IF NOT EXISTS silences (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    rule TEXT NOT NULL,
    device TEXT NOT NULL,
    starts INTEGER NOT NULL,
    ends INTEGER NOT NULL,
    comment TEXT NOT NULL DEFAULT '',
    created_by TEXT NOT NULL DEFAULT ''
);
"""


@dataclass(frozen=True, slots=True)
class Silence:
    id: int
    rule: str
    device: str
    starts: int
    ends: int
    comment: str
    created_by: str

    def matches(self, rule: str, device: str, now: int) -> bool:
        return (
            self.starts <= now < self.ends
            and fnmatchcase(rule, self.rule)
            and fnmatchcase(device, self.device)
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "rule": self.rule,
            "device": self.device,
            "starts_at": rfc3339(self.starts),
            "ends_at": rfc3339(self.ends),
            "comment": self.comment,
            "created_by": self.created_by,
        }


class Silences:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self._db.executescript(SCHEMA)
        self._cache: list[Silence] | None = None

    def add(
        self,
        rule: str,
        device: str,
        seconds: float,
        *,
        comment: str = "",
        created_by: str = "",
        now: int | None = None,
    ) -> Silence:
        if not seconds > 0:  # NaN too
            raise ValueError("a silence must last a positive time")
        longest = durations.MAX_DURATION
        if seconds > longest / durations.SECOND:
            raise ValueError(f"a silence lasts at most {durations.format_duration(longest)}")
        starts = now if now is not None else time.time_ns()
        ends = starts + int(seconds * 1e9)
        cursor = self._db.execute(
            "INSERT INTO silences (rule, device, starts, ends, comment, created_by) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (rule or "*", device or "*", starts, ends, comment, created_by),
        )
        self._db.commit()
        self._cache = None
        return Silence(
            int(cursor.lastrowid or 0),
            rule or "*",
            device or "*",
            starts,
            ends,
            comment,
            created_by,
        )

    def remove(self, silence_id: int) -> bool:
        cursor = self._db.execute("DELETE FROM silences WHERE id = ?", (silence_id,))
        self._db.commit()
        self._cache = None
        return cursor.rowcount > 0

    def active(self, now: int | None = None) -> list[Silence]:
        now = now if now is not None else time.time_ns()
        if self._cache is None:
            self._db.execute("DELETE FROM silences WHERE ends <= ?", (now,))
            self._db.commit()
            rows = self._db.execute(
                "SELECT id, rule, device, starts, ends, comment, created_by "
                "FROM silences ORDER BY id"
            )
            self._cache = [Silence(*row) for row in rows]
        return [s for s in self._cache if s.ends > now]

    def silencing(self, rule: str, device: str, now: int | None = None) -> Silence | None:
        now = now if now is not None else time.time_ns()
        for silence in self.active(now):
            if silence.matches(rule, device, now):
                return silence
        return None
