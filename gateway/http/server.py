"""HTTP server of the gateway (aiohttp): dashboard, API, ``/metrics``, ``/healthz``, ``/readyz``.

aiohttp because the gateway already runs on asyncio and depends on it (the
InfluxDB 1.x writes, webhooks and influxdb-client's async API use it): one
event loop, no second framework.

Routes (README "HTTP API" documents each with curl):

- ``/`` and ``/static/NAME`` — the dashboard (files in ``gateway/http/static/``, no CDN).
- ``GET /api/v1/{status,devices,readings,series,alerts,rules,events,commands,silences}``
- ``GET /api/v1/stream`` — server-sent events for the dashboard (:mod:`.stream`).
- ``POST /api/v1/commands``, ``POST /api/v1/silences``, ``DELETE /api/v1/silences/ID``,
  ``POST /api/v1/rules/reload`` — changes.

Access: reading is open to whoever can reach ``http.listen`` on a loopback
address (the default, 127.0.0.1). With ``http.read_token_required``, or whenever
the server listens beyond loopback (``0.0.0.0:8080`` opens it to the LAN; the
config is refused there without a token), every API call and ``/metrics`` needs
the token too (the page at ``/``, its files and the health checks stay open: they
carry no data). Every mutating call needs ``Authorization: Bearer <token>`` with
the token from ``http.token_file``, compared in constant time. Without a
configured token, mutating calls are refused (403).

Before any of that: the ``Host`` header must name the gateway (421 otherwise,
:mod:`.origin`: DNS rebinding), every answer carries the security headers of
:mod:`.origin`, connections are capped and timed (:mod:`.connections`), and
request inputs are bounded (:mod:`.inputs`).

The server sees the gateway through two narrow objects only: the read model
(:class:`gateway.status.model.StatusModel`) and the controls
(:class:`gateway.status.controls.Controls`); :mod:`gateway.wiring` builds both.
"""

from __future__ import annotations

import hmac
import json
import logging
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.config.addresses import split_listen
from gateway.config.schema import HttpConfig
from gateway.config.units import parse_duration
from gateway.http import inputs
from gateway.http.connections import ConnectionGuard
from gateway.http.observability import HttpLevels
from gateway.http.origin import AllowedHosts, add_security_headers, host_name
from gateway.http.stream import Stream
from gateway.metrics import read_at_scrape
from gateway.status import views
from gateway.status.controls import Controls
from gateway.status.model import StatusModel
from rules import rfc3339

log = logging.getLogger("outpost.http")

API = "/api/v1"
STATIC = Path(__file__).parent / "static"
# The dashboard's files, by name: nothing else is ever looked up on disk for a request.
STATIC_FILES = {path.name: path for path in STATIC.iterdir() if path.is_file()}
OPEN_PATHS = frozenset({"/", "/healthz", "/readyz"})  # never need a token


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(data, ensure_ascii=False), status=status,
                        content_type="application/json")


def _error(status: int, message: str) -> web.Response:
    return _json({"error": message}, status)


class HttpServer:
    def __init__(self, model: StatusModel, controls: Controls, cfg: HttpConfig) -> None:
        self._model = model
        self._controls = controls
        self._cfg = cfg
        self._token = cfg.token.get_secret_value().encode() if cfg.token else None
        self._runner: web.AppRunner | None = None
        self._hosts = AllowedHosts(cfg.listen, cfg.allowed_hosts)
        self.connections = ConnectionGuard(cfg.max_connections, cfg.header_timeout,
                                           cfg.idle_timeout)
        self.live = model.live
        self.stream = Stream(model)
        levels = self._levels = HttpLevels(model, self.stream, self.connections)
        self._collector = read_at_scrape(model.registry, levels.families, levels.samples)
        self.app = web.Application(middlewares=[self._count, self._host, self._auth],
                                   client_max_size=inputs.MAX_BODY)
        self.app.on_response_prepare.append(add_security_headers)
        r = self.app.router
        if cfg.dashboard:
            r.add_get("/", self.index)
            r.add_get("/static/{name}", self.static_file)
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
        cfg = self._cfg
        # aiohttp's keep-alive timeout closes a connection idle between two requests.
        self._runner = web.AppRunner(self.app, access_log=None,
                                     keepalive_timeout=cfg.idle_timeout)
        await self._runner.setup()
        assert self._runner.server is not None  # made by setup()
        host, port = split_listen(cfg.listen)
        await self.connections.listen(self._runner.server, host, port)
        log.info("HTTP API on http://%s/ (dashboard, %s, /metrics); answers to Host %s; "
                 "at most %d connections", cfg.listen, API, self._hosts.describe(),
                 cfg.max_connections)

    async def stop(self) -> None:
        await self.stream.close()
        await self.connections.close()
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
            self._levels.requests[(name, str(status))] += 1

    @web.middleware
    async def _host(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.connections.request_started(request.transport)
        host = request.headers.get("Host")
        if host is not None and not self._hosts.allows(host):
            return _error(421, f"this gateway does not answer to the name "
                               f"{host_name(host)!r}: add it to http.allowed_hosts if it is "
                               "one of its names (a web page may be reading it through DNS "
                               "rebinding)")
        return await handler(request)

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        given = header.removeprefix("Bearer ").strip().encode()
        return (self._token is not None and header.startswith("Bearer ")
                and hmac.compare_digest(given, self._token))

    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method in ("GET", "HEAD", "OPTIONS"):
            if (self._cfg.reads_need_token and request.path not in OPEN_PATHS
                    and not request.path.startswith("/static/")
                    and not self._authorized(request)):
                return _error(401, "reading needs the bearer token (http.read_token_required, "
                                   "or http.listen beyond loopback)")
            return await handler(request)
        if self._token is None:
            return _error(403, "changes through the API need http.token_file in the config")
        if not self._authorized(request):
            return _error(401, "missing or wrong bearer token")
        return await handler(request)

    # dashboard --------------------------------------------------------------------

    async def index(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    async def static_file(self, request: web.Request) -> web.StreamResponse:
        path = STATIC_FILES.get(request.match_info["name"])
        if path is None:
            return _error(404, "no such file")
        return web.FileResponse(path)

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
        entries = self._model.journal.entries(since_ns=inputs.query_since(request),
                                              trace_id=request.query.get("trace"),
                                              limit=inputs.query_limit(request, 200, 10_000))
        return _json({"events": [
            {"id": e.id, "at": rfc3339(e.ts), "kind": e.kind, "rule": e.rule,
             "device": e.device, "trace_id": e.trace_id, "event": e.payload}
            for e in entries]})

    async def commands(self, request: web.Request) -> web.Response:
        return _json({"devices": self._controls.commands(),
                      "recent": views.commands_recent(self._model,
                                                      inputs.query_limit(request, 20, 500))})

    async def list_silences(self, request: web.Request) -> web.Response:
        return _json({"silences": self._controls.silences()})

    # change -----------------------------------------------------------------------

    async def _body(self, request: web.Request) -> dict[str, Any]:
        return await inputs.json_object(request, self._cfg.idle_timeout)

    async def send_command(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        device, settings = body.get("device"), body.get("set")
        if not isinstance(device, str) or not isinstance(settings, dict):
            return _error(400, 'give {"device": "fan-1", "set": {"speed": 50}}')
        outcome, detail = self._controls.send_command(device, settings)
        status = 403 if outcome == "refused" else 202
        return _json({"outcome": str(outcome), "detail": detail}, status)

    async def add_silence(self, request: web.Request) -> web.Response:
        body = await self._body(request)
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
        silence_id = inputs.path_id(request, "id", "silence")
        if not self._controls.remove_silence(silence_id):
            return _error(404, f"no silence {silence_id}")
        return _json({"removed": silence_id})

    async def reload_rules(self, request: web.Request) -> web.Response:
        ok = await self._controls.reload_rules()
        return _json({"reloaded": ok}, 200 if ok else 422)
