"""HTTP server of the gateway (aiohttp): dashboard, API, ``/metrics``, ``/healthz``, ``/readyz``.

aiohttp because the gateway already runs on asyncio and depends on it (the
InfluxDB 1.x writes, webhooks and influxdb-client's async API use it): one
event loop, no second framework.

Routes (README "HTTP API" documents each with curl):

- ``/`` and ``/static/…`` — the dashboard (files in ``gateway/http/static/``, no CDN).
- ``GET /api/v1/{status,devices,readings,series,alerts,rules,events,commands,silences}``
- ``GET /api/v1/stream`` — server-sent events for the dashboard (:mod:`.stream`).
- ``POST /api/v1/commands``, ``POST /api/v1/silences``, ``DELETE /api/v1/silences/ID``,
  ``POST /api/v1/rules/reload`` — changes.

Access: reading is open to whoever can reach ``http.listen`` (127.0.0.1 by
default; ``0.0.0.0:8080`` opens it to the LAN) unless ``http.read_token_required``
is set, in which case every API call and ``/metrics`` needs the token too (the
page at ``/`` and the health checks stay open: they carry no data). Every
mutating call needs ``Authorization: Bearer <token>`` with the token from
``http.token_file``, compared in constant time. Without a configured token,
mutating calls are refused (403).

The server sees the gateway through two narrow objects only: the read model
(:class:`gateway.status.model.StatusModel`) and the controls
(:class:`gateway.status.controls.Controls`); :mod:`gateway.wiring` builds both.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.config.schema import HttpConfig
from gateway.config.units import parse_duration
from gateway.http.observability import HttpCollector
from gateway.http.stream import Stream
from gateway.status import views
from gateway.status.controls import Controls
from gateway.status.model import StatusModel
from rules import rfc3339

log = logging.getLogger("outpost.http")

API = "/api/v1"
STATIC = Path(__file__).parent / "static"
OPEN_PATHS = frozenset({"/", "/healthz", "/readyz"})  # never need a token


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(data, ensure_ascii=False), status=status,
                        content_type="application/json")


def _error(status: int, message: str) -> web.Response:
    return _json({"error": message}, status)


def _limit(request: web.Request, default: int, cap: int) -> int:
    """``?limit=N`` bounded to ``cap``; a non-number is a 400."""
    try:
        return max(1, min(int(request.query.get("limit", default)), cap))
    except ValueError:
        raise web.HTTPBadRequest(text='{"error": "limit must be a number"}',
                                 content_type="application/json") from None


class HttpServer:
    def __init__(self, model: StatusModel, controls: Controls, cfg: HttpConfig) -> None:
        self._model = model
        self._controls = controls
        self._cfg = cfg
        self._token = cfg.token.get_secret_value().encode() if cfg.token else None
        self._runner: web.AppRunner | None = None
        self.live = model.live
        self.stream = Stream(model)
        self._collector = HttpCollector(model, self.stream)
        model.registry.register(self._collector)
        self.app = web.Application(middlewares=[self._count, self._auth])
        r = self.app.router
        if cfg.dashboard:
            r.add_get("/", self.index)
            r.add_static("/static/", STATIC, append_version=False)
            r.add_get(f"{API}/stream", self.stream.handle)
        r.add_get("/healthz", self.healthz)
        r.add_get("/readyz", self.readyz)
        r.add_get("/metrics", self.metrics)
        r.add_get(f"{API}/status", self.status)
        r.add_get(f"{API}/devices", self.devices)
        r.add_get(f"{API}/readings", self.readings)
        r.add_get(f"{API}/series", self.series)
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
        await self.stream.close()
        if self._runner is not None:
            await self._runner.cleanup()
        self._model.registry.unregister(self._collector)

    @web.middleware
    async def _count(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        route = request.match_info.route.resource
        name = route.canonical if route is not None else "unmatched"
        status = 500
        try:
            response: web.StreamResponse = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            self._collector.requests[(name, str(status))] += 1

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        given = header.removeprefix("Bearer ").strip().encode()
        return (self._token is not None and header.startswith("Bearer ")
                and hmac.compare_digest(given, self._token))

    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method in ("GET", "HEAD", "OPTIONS"):
            if (self._cfg.read_token_required and request.path not in OPEN_PATHS
                    and not request.path.startswith("/static/")
                    and not self._authorized(request)):
                return _error(401, "reading needs the bearer token (http.read_token_required)")
            return await handler(request)
        if self._token is None:
            return _error(403, "changes through the API need http.token_file in the config")
        if not self._authorized(request):
            return _error(401, "missing or wrong bearer token")
        return await handler(request)

    # dashboard --------------------------------------------------------------------

    async def index(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    # health -----------------------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(self, request: web.Request) -> web.Response:
        problems = []
        if not self._model.source_connected():
            problems.append("broker not connected")
        if problems:
            return web.Response(text="not ready: " + ", ".join(problems) + "\n", status=503)
        return web.Response(text="ready\n")

    async def metrics(self, request: web.Request) -> web.Response:
        self._model.refresh_gauges()
        body = generate_latest(self._model.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    # read -------------------------------------------------------------------------

    async def status(self, request: web.Request) -> web.Response:
        model = self._model
        devices = views.devices(model, self.live)
        return _json({**views.health(model, self.live, self.stream.clients),
                      "devices": len(devices),
                      "devices_online": sum(1 for d in devices if d["online"])})

    async def devices(self, request: web.Request) -> web.Response:
        return _json({"devices": views.devices(self._model, self.live)})

    async def readings(self, request: web.Request) -> web.Response:
        spark = request.query.get("spark", "") in ("1", "true", "yes")
        return _json({"readings": views.readings(self.live, request.query.get("device"), spark)})

    async def series(self, request: web.Request) -> web.Response:
        device, metric = request.query.get("device"), request.query.get("metric")
        if not device or not metric:
            return _error(400, "give ?device=ID&metric=NAME")
        s = self.live.get(device, metric)
        if s is None:
            return _error(404, f"no readings of {metric} from {device} since the gateway started")
        return _json({**views.reading(self.live, s), "bucket_s": self.live.bucket_ns / 1e9,
                      "points": self.live.sparkline(s)})

    async def alerts(self, request: web.Request) -> web.Response:
        return _json({"alerts": views.alerts(self._model)})

    async def rules(self, request: web.Request) -> web.Response:
        return _json({"rules": views.rules(self._model), **views.rule_files_status(self._model)})

    async def events(self, request: web.Request) -> web.Response:
        since = None
        if "since" in request.query:
            try:
                since = time.time_ns() - int(parse_duration(request.query["since"]) * 1e9)
            except ValueError as exc:
                return _error(400, f"since: {exc}")
        entries = self._model.journal.entries(since_ns=since, trace_id=request.query.get("trace"),
                                  limit=_limit(request, 200, 10_000))
        return _json({"events": [
            {"id": e.id, "at": rfc3339(e.ts), "kind": e.kind, "rule": e.rule,
             "device": e.device, "trace_id": e.trace_id, "event": e.payload}
            for e in entries]})

    async def commands(self, request: web.Request) -> web.Response:
        return _json({"devices": self._controls.commands(),
                      "recent": views.commands_recent(self._model, _limit(request, 20, 500))})

    async def list_silences(self, request: web.Request) -> web.Response:
        return _json({"silences": self._controls.silences()})

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
        outcome, detail = self._controls.send_command(device, settings)
        status = 403 if outcome == "refused" else 202
        return _json({"outcome": str(outcome), "detail": detail}, status)

    async def add_silence(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        try:
            seconds = parse_duration(body.get("for", ""))
            silence = self._controls.add_silence(
                str(body.get("rule") or "*"), str(body.get("device") or "*"), seconds,
                comment=str(body.get("comment") or ""),
                created_by=str(body.get("created_by") or "api"))
        except ValueError as exc:
            return _error(400, str(exc))
        return _json(silence, 201)

    async def remove_silence(self, request: web.Request) -> web.Response:
        try:
            silence_id = int(request.match_info["id"])
        except ValueError:
            return _error(400, "silence ids are numbers")
        if not self._controls.remove_silence(silence_id):
            return _error(404, f"no silence {silence_id}")
        return _json({"removed": silence_id})

    async def reload_rules(self, request: web.Request) -> web.Response:
        ok = await self._controls.reload_rules()
        return _json({"reloaded": ok}, 200 if ok else 422)
