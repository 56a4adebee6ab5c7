"""JSON views of the running gateway, shared by the API and the dashboard's event stream.

Each function reads the gateway's read model (:class:`gateway.status.model.StatusModel`)
and returns plain JSON-ready data; none does I/O except :func:`commands_recent`
and :func:`trace`, which read the journal (SQLite, indexed, a few rows). Times are
RFC 3339 UTC strings with milliseconds (DESIGN.md §5).
"""

from __future__ import annotations

import importlib.metadata
import time
from typing import Any

from gateway.health import Health
from gateway.status.live import NS, LiveState
from gateway.status.model import StatusModel
from rules import rfc3339

COMMAND_KINDS = (
    "command",
    "command_acked",
    "command_rejected",
    "command_timed_out",
    "command_superseded",
    "command_refused",
    "command_deferred",
    "command_retry",
)
STARTED_NS = time.time_ns()

try:
    VERSION = importlib.metadata.version("outpost")
except importlib.metadata.PackageNotFoundError:  # running from a source tree
    VERSION = "0+unknown"


def devices(model: StatusModel, live: LiveState) -> list[dict[str, Any]]:
    """Devices with online/offline and last seen: the device registry when the gateway
    has one (``model.devices.snapshot()``), else what the readings alone tell."""
    registry = getattr(model, "devices", None)
    if registry is not None and hasattr(registry, "snapshot"):
        out = []
        for d in registry.snapshot():
            seen = live.devices.get(d["device"])
            link = {"modbus": d["modbus"]} if "modbus" in d else {}
            out.append(
                {
                    **link,
                    "device": d["device"],
                    "online": d["online"],
                    "online_reason": d.get("online_reason"),
                    "last_seen": d.get("last_seen"),
                    "convention": d.get("convention"),
                    "readings": seen[2] if seen else 0,
                    "reporting_interval_s": d.get("reporting_interval_s"),
                    "metrics": dict(d.get("metrics") or {}),
                }
            )
        return out
    return [
        {
            "device": d["device"],
            "online": d["online"],
            "online_reason": d["online_reason"],
            "last_seen": rfc3339(d["last_seen_ns"]),
            "convention": None,
            "readings": d["readings"],
            "metrics": {m: {} for m in d["metrics"]},
        }
        for d in live.devices_seen()
    ]


def reading(live: LiveState, series: Any, spark: bool = False) -> dict[str, Any]:
    view = live.reading(series, spark)
    view["ts"] = rfc3339(view["ts"])
    return view


def readings(
    live: LiveState, device: str | None = None, spark: bool = False
) -> list[dict[str, Any]]:
    out = live.readings(device, spark)
    for view in out:
        view["ts"] = rfc3339(view["ts"])
    return out


def alerts(model: StatusModel) -> list[dict[str, Any]]:
    """Every alert the engine holds (pending, firing, and resolved ones it still remembers)."""
    rules = model.rules
    severity = {r.name: r.severity for r in rules.definitions()}
    return [
        {
            "rule": a.rule,
            "device": a.device,
            "state": a.record.state.value,
            "severity": severity.get(a.rule, ""),
            "value": a.record.value,
            "active_at": rfc3339(a.record.active_at),
            "fired_at": rfc3339(a.record.fired_at),
            "resolved_at": rfc3339(a.record.resolved_at),
            "trace_id": a.record.trace_id or None,
        }
        for a in rules.alerts()
    ]


def rules(model: StatusModel) -> list[dict[str, Any]]:
    """Rules with their counters and the state of each device they hold an alert for."""
    runtime = model.rules
    counters = runtime.rule_counters()
    per_rule: dict[str, dict[str, str]] = {}
    for a in runtime.alerts():
        per_rule.setdefault(a.rule, {})[a.device] = a.record.state.value
    out = []
    for r in runtime.definitions():
        out.append(
            {
                "name": r.name,
                "severity": r.severity,
                "when": r.when.text,
                "match": {"metric": r.match.metric, "device": r.match.device},
                "description": r.description,
                "file": f"{r.mark.file}:{r.mark.line}",
                "devices": per_rule.get(r.name, {}),
                **counters.get(r.name, {}),
            }
        )
    return out


def rule_files_status(model: StatusModel) -> dict[str, Any]:
    """Whether the rule files are valid as last read (they are re-read when they change).

    The running rules are the last valid set: files that changed into something
    invalid are refused, and this says so with every error (``file:line: …``).
    """
    rules = model.rules
    return {"valid": not rules.errors, "files": rules.files, "errors": list(rules.errors)}


def commands_recent(model: StatusModel, limit: int = 20) -> list[dict[str, Any]]:
    """The last ``limit`` commands, newest first, each with its latest outcome."""
    journal = model.journal
    by_id: dict[str, dict[str, Any]] = {}
    order: list[str] = []
    for e in journal.entries(kinds=COMMAND_KINDS, limit=limit * 6):
        p = e.payload
        cid = str(p.get("id") or f"#{e.id}")
        item = by_id.get(cid)
        if item is None:
            item = by_id[cid] = {
                "id": cid,
                "device": e.device,
                "set": p.get("set"),
                "origin": p.get("origin"),
                "rule": e.rule,
                "at": rfc3339(e.ts),
                "outcome": None,
                "outcome_at": None,
                "attempts": 1,
                "trace_id": e.trace_id,
            }
            order.append(cid)
        if e.kind == "command":
            item["outcome"] = item["outcome"] or "sent"
        elif e.kind == "command_retry":
            item["attempts"] += 1
        else:
            item["outcome"] = e.kind.removeprefix("command_")
            item["outcome_at"] = rfc3339(e.ts)
            if p.get("reason") or p.get("detail"):
                item["detail"] = p.get("reason") or p.get("detail")
    return [by_id[cid] for cid in reversed(order)][:limit]


def health(model: StatusModel, live: LiveState, stream_clients: int = 0) -> dict[str, Any]:
    """Broker, InfluxDB and buffer state: the dashboard's header and ``outpost status``."""
    rules_counters = model.rules.counters()
    readings = sum(seen[2] for seen in list(live.devices.values()))
    totals = sum_samples(model, ("outpost_influx_up", "outpost_deadletters_total", *_OUTBOX))
    outbox = None
    if model.has_outbox:  # disabled, or the disk could not hold it
        outbox = {
            "readings": int(totals["outpost_outbox_readings"]),
            "bytes": int(totals["outpost_outbox_bytes"]),
            "oldest_age_s": round(totals["outpost_outbox_oldest_age_seconds"], 1),
            "degraded": bool(totals["outpost_outbox_degraded"]),
        }
    return {
        "version": VERSION,
        "started_at": rfc3339(STARTED_NS),
        "uptime_s": round((time.time_ns() - STARTED_NS) / NS, 1),
        "mqtt_connected": model.source_connected(),
        "influx_up": bool(totals["outpost_influx_up"]),
        "broker": broker(model.broker_health()),  # state and last error of each, apart
        "influx": model.influx_health().to_json(),
        "influx_buffered": model.writer_buffered(),
        "pipeline_pending": model.pipeline_pending(),
        "readings": readings,
        "series": live.series_count,
        "series_refused": live.refused,
        "rules": rules_counters.get("rules", 0),
        "alerts_pending": rules_counters.get("alerts_pending", 0),
        "alerts_firing": rules_counters.get("alerts_firing", 0),
        "deadletters": int(totals["outpost_deadletters_total"]),
        "stream_clients": stream_clients,
        "outbox": outbox,  # the disk outbox, None if off
    }


def broker(connections: dict[str, Health]) -> dict[str, Any]:
    """The broker as the gateway's connections to it find it: ``up`` when all are,
    ``down`` when one is, with the newest failure of any, and each connection apart."""
    states = {h.state for h in connections.values()}
    state = "down" if "down" in states else "up" if states == {"up"} else "unknown"
    failed = [h for h in connections.values() if h.last_error_ns is not None]
    newest = max(failed, key=lambda h: h.last_error_ns or 0, default=None)
    return {
        "state": state,
        "target": next((h.target for h in connections.values()), None),
        "last_error": newest.last_error if newest else None,
        "last_error_at": rfc3339(newest.last_error_ns) if newest else None,
        "failures": max((h.failures for h in connections.values()), default=0),
        "connections": {name: h.to_json() for name, h in connections.items()},
    }


_OUTBOX = (
    "outpost_outbox_readings",
    "outpost_outbox_bytes",
    "outpost_outbox_oldest_age_seconds",
    "outpost_outbox_degraded",
)


def sum_samples(model: StatusModel, names: tuple[str, ...]) -> dict[str, float]:
    """Each named sample summed over its labels, in one pass over the registry."""
    totals = dict.fromkeys(names, 0.0)
    for family in model.registry.collect():
        for sample in family.samples:
            if sample.name in totals:
                totals[sample.name] += sample.value
    return totals


def trace(model: StatusModel, trace_id: str) -> list[dict[str, Any]]:
    return [
        {
            "id": e.id,
            "at": rfc3339(e.ts),
            "kind": e.kind,
            "rule": e.rule,
            "device": e.device,
            "trace_id": e.trace_id,
            "event": e.payload,
        }
        for e in model.journal.entries(trace_id=trace_id, limit=500)
    ]
