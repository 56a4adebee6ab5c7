"""What the engine's state looks like outside it: journal records and reload reports.

The gateway keeps :class:`StoredAlert` and :class:`StoredSeries` in its SQLite
journal (``to_dict``/``from_dict`` are JSON-friendly) and hands them back to
:meth:`rules.engine.Engine.restore` after a restart. An alert is only restored
into a rule with the same fingerprint, so a changed rule starts clean.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rules.model import Value
from rules.state import AlertRecord, AlertState


@dataclass(frozen=True, slots=True)
class StoredAlert:
    """An alert record as the journal keeps it (JSON-friendly via :meth:`to_dict`)."""

    rule: str
    fingerprint: str
    device: str
    record: AlertRecord

    def to_dict(self) -> dict[str, Any]:
        r = self.record
        return {
            "rule": self.rule,
            "fingerprint": self.fingerprint,
            "device": self.device,
            "state": r.state.value,
            "active_at": r.active_at,
            "fired_at": r.fired_at,
            "resolved_at": r.resolved_at,
            "last_sent_at": r.last_sent_at,
            "clear_since": r.clear_since,
            "value": r.value,
            "trace_id": r.trace_id,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StoredAlert:
        rec = AlertRecord(
            AlertState(d["state"]),
            d.get("active_at"),
            d.get("fired_at"),
            d.get("resolved_at"),
            d.get("last_sent_at"),
            d.get("clear_since"),
            d.get("value"),
            d.get("trace_id") or "",
        )
        return cls(str(d["rule"]), str(d["fingerprint"]), str(d["device"]), rec)


@dataclass(frozen=True, slots=True)
class StoredSeries:
    """The last reading of a (device, metric): lets ``absent`` and cross-metric refs survive."""

    device: str
    metric: str
    ts: int
    value: Value
    tags: Mapping[str, str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "metric": self.metric,
            "ts": self.ts,
            "value": self.value,
            "tags": dict(self.tags),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StoredSeries:
        return cls(
            str(d["device"]), str(d["metric"]), int(d["ts"]), d["value"], dict(d.get("tags") or {})
        )


@dataclass(frozen=True, slots=True)
class ReloadResult:
    """What :meth:`Engine.reload` did, by rule name."""

    kept: tuple[str, ...]
    changed: tuple[str, ...]
    added: tuple[str, ...]
    removed: tuple[str, ...]
    dropped_alerts: int  # pending/firing alerts forgotten because their rule changed or went
