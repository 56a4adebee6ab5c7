"""HTTP server of the gateway (aiohttp): the API, ``/metrics``, ``/healthz``, ``/readyz``.

aiohttp because the gateway already runs on asyncio and depends on it (the
InfluxDB 1.x writes, webhooks and influxdb-client's async API use it): one
event loop, no second framework.

Reading is open to whoever can reach ``http.listen`` (127.0.0.1 by default);
every mutating call needs ``Authorization: Bearer <token>`` with the token
from ``http.token_file``, compared in constant time. Without a configured
token, mutating calls are refused (403).
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.actions.dispatcher import Origin
from gateway.config.schema import HttpConfig
from gateway.units import parse_duration
from rules import rfc3339

if TYPE_CHECKING:
    from gateway.app import Gateway

log = logging.getLogger("outpost.http")

API = "/api/v1"


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(data, ensure_ascii=False), status=status,
                        content_type="application/json")


def _error(status: int, message: str) -> web.Response:
    return _json({"error": message}, status)


class HttpServer:
    def __init__(self, gateway: Gateway, cfg: HttpConfig) -> None:
        self._gw = gateway
        self._cfg = cfg
        self._token = cfg.token.get_secret_value().encode() if cfg.token else None
        self._runner: web.AppRunner | None = None
        self.app = web.Application(middlewares=[self._auth])
        r = self.app.router
        r.add_get("/healthz", self.healthz)
        r.add_get("/readyz", self.readyz)
        r.add_get("/metrics", self.metrics)
        r.add_get(f"{API}/alerts", self.alerts)
        r.add_get(f"{API}/rules", self.rules)
        r.add_get(f"{API}/events", self.events)
        r.add_get(f"{API}/commands", self.commands)
        r.add_post(f"{API}/commands", self.send_command)
        r.add_get(f"{API}/silences", self.list_silences)
        r.add_post(f"{API}/silences", self.add_silence)
        r.add_delete(f"{API}/silences/{{id}}", self.remove_silence)
        r.add_post(f"{API}/rules/reload", self.reload_rules)

    async def start(self) -> None:
        host, _, port = self._cfg.listen.rpartition(":")
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host.strip("[]") or "127.0.0.1", int(port))
        await site.start()
        log.info("HTTP API on http://%s/ (dashboard, %s, /metrics)", self._cfg.listen, API)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return await handler(request)
        if self._token is None:
            return _error(403, "changes through the API need http.token_file in the config")
        header = request.headers.get("Authorization", "")
        given = header.removeprefix("Bearer ").strip().encode()
        if not header.startswith("Bearer ") or not hmac.compare_digest(given, self._token):
            return _error(401, "missing or wrong bearer token")
        return await handler(request)

    # health -----------------------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(self, request: web.Request) -> web.Response:
        gw = self._gw
        problems = []
        if gw.ingest is None or not gw.ingest.connected:
            problems.append("broker not connected")
        if gw.rules is None:
            problems.append("rules not loaded")
        if problems:
            return web.Response(text="not ready: " + ", ".join(problems) + "\n", status=503)
        return web.Response(text="ready\n")

    async def metrics(self, request: web.Request) -> web.Response:
        gw = self._gw
        m = gw.metrics
        if gw.writer is not None:
            m.influx_buffered.set(gw.writer.buffered)
        if gw.rules is not None:
            counters = gw.rules.counters()
            m.alerts_active.labels("pending").set(counters.get("alerts_pending", 0))
            m.alerts_active.labels("firing").set(counters.get("alerts_firing", 0))
            m.rules_loaded.set(counters.get("rules", 0))
            m.rule_undefined.set(counters.get("undefined", 0))
            m.window_points.set(counters.get("window_points", 0))
        body = generate_latest(m.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    # read -------------------------------------------------------------------------

    async def alerts(self, request: web.Request) -> web.Response:
        rules = self._gw.rules
        items = [] if rules is None else [
            {"rule": a.rule, "device": a.device, "state": a.record.state.value,
             "value": a.record.value, "active_at": rfc3339(a.record.active_at),
             "fired_at": rfc3339(a.record.fired_at), "resolved_at": rfc3339(a.record.resolved_at),
             "trace_id": a.record.trace_id or None}
            for a in rules.engine.alerts()]
        return _json({"alerts": items})

    async def rules(self, request: web.Request) -> web.Response:
        rules = self._gw.rules
        if rules is None:
            return _json({"rules": []})
        counters = rules.engine.rule_counters()
        items = [{"name": r.name, "severity": r.severity, "when": r.when.text,
                  **counters.get(r.name, {})} for r in rules.engine.ruleset.rules]
        return _json({"rules": items})

    async def events(self, request: web.Request) -> web.Response:
        journal = self._gw.journal
        if journal is None:
            return _json({"events": []})
        since = None
        if "since" in request.query:
            try:
                since = time.time_ns() - int(parse_duration(request.query["since"]) * 1e9)
            except ValueError as exc:
                return _error(400, f"since: {exc}")
        limit = int(request.query.get("limit", "200"))
        entries = journal.entries(since_ns=since, trace_id=request.query.get("trace"),
                                  limit=min(limit, 10_000))
        return _json({"events": [
            {"id": e.id, "at": rfc3339(e.ts), "kind": e.kind, "rule": e.rule,
             "device": e.device, "trace_id": e.trace_id, "event": e.payload}
            for e in entries]})

    async def commands(self, request: web.Request) -> web.Response:
        dispatcher = self._gw.dispatcher
        return _json({"devices": [] if dispatcher is None else dispatcher.state()})

    async def list_silences(self, request: web.Request) -> web.Response:
        silences = self._gw.silences
        return _json({"silences": [] if silences is None else
                      [s.to_dict() for s in silences.active()]})

    # change -----------------------------------------------------------------------

    async def _body(self, request: web.Request) -> dict[str, Any] | web.Response:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error(400, "the body must be a JSON object")
        if not isinstance(body, dict):
            return _error(400, "the body must be a JSON object")
        return body

    async def send_command(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        device, settings = body.get("device"), body.get("set")
        if not isinstance(device, str) or not isinstance(settings, dict):
            return _error(400, 'give {"device": "fan-1", "set": {"speed": 50}}')
        if self._gw.dispatcher is None:
            return _error(503, "not ready")
        outcome, detail = self._gw.dispatcher.submit(device, settings, Origin("api"))
        status = 403 if outcome == "refused" else 202
        return _json({"outcome": str(outcome), "detail": detail}, status)

    async def add_silence(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        silences = self._gw.silences
        if silences is None:
            return _error(503, "not ready")
        try:
            seconds = parse_duration(body.get("for", ""))
            silence = silences.add(str(body.get("rule") or "*"), str(body.get("device") or "*"),
                                   seconds, comment=str(body.get("comment") or ""),
                                   created_by=str(body.get("created_by") or "api"))
        except ValueError as exc:
            return _error(400, str(exc))
        return _json(silence.to_dict(), 201)

    async def remove_silence(self, request: web.Request) -> web.Response:
        silences = self._gw.silences
        try:
            silence_id = int(request.match_info["id"])
        except ValueError:
            return _error(400, "silence ids are numbers")
        if silences is None or not silences.remove(silence_id):
            return _error(404, f"no silence {silence_id}")
        return _json({"removed": silence_id})

    async def reload_rules(self, request: web.Request) -> web.Response:
        rules = self._gw.rules
        if rules is None:
            return _error(503, "not ready")
        ok = rules.reload()
        return _json({"reloaded": ok}, 200 if ok else 422)
