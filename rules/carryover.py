"""The engine's state out and in: journal export (alerts, series), restore from
the journal, the reload carry-over of unchanged rules, and the counters.

Pure functions over the engine's runtimes and series; :class:`rules.engine.Engine`
calls them and keeps its own bookkeeping (install, clock).
"""

from __future__ import annotations

from collections.abc import Iterable

from rules.model import RuleSet
from rules.runtime import _RuleRuntime
from rules.snapshot import ReloadResult, StoredAlert, StoredSeries
from rules.state import AlertState
from rules.windows import Series

__all__ = [
    "carry_over",
    "counters",
    "restore_alerts",
    "rule_counters",
    "stored_alerts",
    "stored_series",
]

_F = AlertState.FIRING
_P = AlertState.PENDING


def stored_alerts(runtimes: Iterable[_RuleRuntime]) -> list[StoredAlert]:
    """Every alert not inactive (pending, firing, resolved), in rule order."""
    return [
        StoredAlert(rt.rule.name, rt.rule.fingerprint, device, rec)
        for rt in runtimes
        for device, rec in sorted(rt.records.items())
    ]


def stored_series(devices: dict[str, dict[str, Series]]) -> list[StoredSeries]:
    """Every series' latest reading, for the journal."""
    return [
        StoredSeries(s.device, s.metric, s.ts, s.value, dict(s.tags))
        for ms in devices.values()
        for s in ms.values()
    ]


def restore_alerts(runtimes: Iterable[_RuleRuntime], alerts: Iterable[StoredAlert]) -> int:
    """Put journal alerts back on their rules (same name and fingerprint); how many."""
    by_key = {(rt.rule.name, rt.rule.fingerprint): rt for rt in runtimes}
    restored = 0
    for alert in alerts:
        rt = by_key.get((alert.rule, alert.fingerprint))
        if rt is None or alert.record.state is AlertState.INACTIVE:
            continue
        rt.records[alert.device] = alert.record
        restored += 1
    return restored


def carry_over(
    old_runtimes: Iterable[_RuleRuntime], ruleset: RuleSet
) -> tuple[list[_RuleRuntime], ReloadResult]:
    """The runtimes of ``ruleset``; rules with an unchanged fingerprint keep alerts and counts."""
    old = {rt.rule.name: rt for rt in old_runtimes}
    runtimes: list[_RuleRuntime] = []
    kept: list[str] = []
    changed: list[str] = []
    added: list[str] = []
    for i, rule in enumerate(ruleset.rules):
        rt = _RuleRuntime(rule, i)
        prev = old.get(rule.name)
        if prev is None:
            added.append(rule.name)
        elif prev.rule.fingerprint == rule.fingerprint:
            rt.records = prev.records
            rt.evaluations, rt.undefined = prev.evaluations, prev.undefined
            kept.append(rule.name)
        else:
            changed.append(rule.name)
        runtimes.append(rt)
    names = {r.name for r in ruleset.rules}
    removed = [n for n in old if n not in names]
    dropped = sum(
        1 for n in removed + changed for rec in old[n].records.values() if rec.state in (_P, _F)
    )
    result = ReloadResult(tuple(kept), tuple(changed), tuple(added), tuple(removed), dropped)
    return runtimes, result


def counters(
    runtimes: list[_RuleRuntime],
    devices: dict[str, dict[str, Series]],
    dropped_retired: int,
    scheduled: int,
) -> dict[str, int]:
    """Totals for ``/metrics``: evaluations, undefined, window points kept and dropped…"""
    points = dropped = series = 0
    for ms in devices.values():
        series += len(ms)
        for s in ms.values():
            if s.store is not None:
                points += len(s.store)
                dropped += s.store.dropped
    states = [rec.state for rt in runtimes for rec in rt.records.values()]
    return {
        "rules": len(runtimes),
        "evaluations": sum(rt.evaluations for rt in runtimes),
        "undefined": sum(rt.undefined for rt in runtimes),
        "series": series,
        "window_points": points,
        "window_points_dropped": dropped + dropped_retired,
        "alerts_pending": states.count(_P),
        "alerts_firing": states.count(_F),
        "scheduled": scheduled,
    }


def rule_counters(runtimes: Iterable[_RuleRuntime]) -> dict[str, dict[str, int]]:
    """Per rule: ``{"evaluations": n, "undefined": n}``."""
    return {
        rt.rule.name: {"evaluations": rt.evaluations, "undefined": rt.undefined} for rt in runtimes
    }
