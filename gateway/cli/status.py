"""``outpost status``: a terminal summary of a running gateway, from its HTTP API.

Finds the gateway like ``outpost command`` does (``http.listen`` and
``http.token_file`` of ``-c FILE``), or at ``--url``. The broker and InfluxDB
each get their line, with the reason of the last failure while they fail.
Exit codes: 0 the gateway answers and is healthy (broker connected, InfluxDB
not failing: the last write succeeded, or none was needed yet); 1 it answers
but is degraded; 2 it cannot be reached or the config is invalid.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

from gateway.cli.api import ApiError, GatewayApi
from gateway.cli.common import load_config_or_report

# Four quick GETs: a gateway slower than this is as good as down for a summary.
_TIMEOUT_S = 5.0


def _ago(iso: str | None, now: datetime) -> str:
    if not iso:
        return "never"
    seconds = (now - datetime.fromisoformat(iso.replace("Z", "+00:00"))).total_seconds()
    return _duration(max(0.0, seconds)) + " ago"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds // 3600:.0f} h {seconds % 3600 // 60:.0f} min"
    return f"{seconds / 86400:.0f} d"


def _value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return "—" if v is None else str(v)


def _broker(status: dict[str, Any], now: datetime) -> tuple[str, bool]:
    """The MQTT line, and whether the broker is connected."""
    broker = status.get("broker") or {
        "state": "up" if status["mqtt_connected"] else "down", "target": None}
    where = f" to {broker['target']}" if broker.get("target") else ""
    if broker["state"] == "up":
        return f"connected{where}", True
    if broker["state"] == "unknown":
        return f"connecting{where}", False
    error = broker.get("last_error")
    attempts, last = broker.get("failures") or 0, _ago(broker.get("last_error_at"), now)
    detail = f": {error} ({attempts} failed attempts, the last {last})"
    return f"NOT CONNECTED{where}" + (detail if error else ""), False


def _influx(status: dict[str, Any], now: datetime) -> tuple[str, bool]:
    """The InfluxDB state, and whether it is failing."""
    influx = status.get("influx") or {"state": "up" if status["influx_up"] else "down"}
    if influx["state"] == "up":
        return "up", False
    if influx["state"] == "unknown":
        return "no write yet", False
    error = influx.get("last_error")
    since = f" since {_ago(influx.get('since'), now)}" if influx.get("since") else ""
    return f"DOWN{since}" + (f": {error}" if error else ""), True


def healthy(status: dict[str, Any]) -> bool:
    """Broker connected and InfluxDB not failing (exit code 0 of ``outpost status``)."""
    now = datetime.now(UTC)
    return _broker(status, now)[1] and not _influx(status, now)[1]


def render(
    base: str,
    status: dict[str, Any],
    devices: list[dict[str, Any]],
    alerts: list[dict[str, Any]],
    commands: list[dict[str, Any]],
    now: datetime | None = None,
) -> str:
    now = now or datetime.now(UTC)
    lines = [f"Outpost {status['version']} at {base} — up {_duration(status['uptime_s'])}"]
    lines.append(f"  MQTT       {_broker(status, now)[0]}")
    lines.append(
        f"  InfluxDB   {_influx(status, now)[0]}; {status['influx_buffered']} readings buffered")
    outbox = status.get("outbox")
    if outbox:
        where = "IN MEMORY ONLY (disk full?)" if outbox["degraded"] else "on disk"
        oldest = f", oldest {_duration(outbox['oldest_age_s'])}" if outbox["readings"] else ""
        lines.append(f"  outbox     {outbox['readings']} readings {where}{oldest}")
    lines.append(
        f"  readings   {status['readings']} since start, {status['series']} series, "
        f"{status['deadletters']} dead letters"
    )
    online = [d for d in devices if d["online"]]
    lines.append(f"  devices    {len(online)}/{len(devices)} online")
    for d in devices:
        if not d["online"]:
            lines.append(f"    offline  {d['device']}  last seen {_ago(d['last_seen'], now)}")
    active = [a for a in alerts if a["state"] in ("firing", "pending")]
    lines.append(
        f"  rules      {status['rules']} loaded; alerts {status['alerts_firing']} firing, "
        f"{status['alerts_pending']} pending"
    )
    for a in sorted(active, key=lambda a: (a["state"] != "firing", a["rule"], a["device"])):
        since = a["fired_at"] or a["active_at"]
        lines.append(
            f"    {a['state'].upper():<8} {a['severity'] or '-':<9} {a['rule']}  "
            f"{a['device']}  value {_value(a['value'])}  since {_ago(since, now)}"
        )
    for c in commands[:3]:
        settings = " ".join(f"{k}={v}" for k, v in (c.get("set") or {}).items())
        lines.append(
            f"  command    {c['device']} {settings}: {c['outcome']} "
            f"{_ago(c['outcome_at'] or c['at'], now)}"
        )
    return "\n".join(lines)


def _cmd_status(args: argparse.Namespace) -> int:
    if args.url:
        api = GatewayApi(args.url, timeout=_TIMEOUT_S)
    else:
        loaded = load_config_or_report(args)
        if loaded is None:
            return 2
        api = GatewayApi.from_config(loaded.config.http, timeout=_TIMEOUT_S)
    try:
        status = api.get("/api/v1/status")
        devices = api.get("/api/v1/devices")["devices"]
        alerts = api.get("/api/v1/alerts")["alerts"]
        commands = api.get("/api/v1/commands?limit=3")["recent"]
    except ApiError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.json:
        print(
            json.dumps(
                {"status": status, "devices": devices, "alerts": alerts, "commands": commands},
                indent=2,
            )
        )
    else:
        print(render(api.base, status, devices, alerts, commands))
    return 0 if healthy(status) else 1


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    status = sub.add_parser("status", parents=[common], help="summary of a running gateway")
    status.add_argument("--url", help="the gateway's address (default: http.listen of -c)")
    status.add_argument("--json", action="store_true", help="print the API answers as JSON")
    status.set_defaults(func=_cmd_status)
