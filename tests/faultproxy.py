"""A fault-injecting HTTP reverse proxy, run as its own process in front of a real influxd.

InfluxDB will not answer 401, 413, 429 or 503 on demand; this proxy does (DESIGN.md §8)::

    python -m tests.faultproxy --listen 9001 --upstream http://127.0.0.1:8086 --control 9002

Proxied traffic goes to ``--listen``; the control API on ``--control`` (JSON):

    POST   /faults    add a fault (fields of :class:`Fault`); faults apply in the order added
    DELETE /faults    remove all faults
    GET    /requests  every proxied request: method, path, query, headers, body_length,
                      lines (of the decompressed body), status answered, fault applied
    DELETE /requests  forget the recorded requests
    GET    /health    "OK"

A fault matches a request when its `path` (a prefix) matches and, for `reject`, the
(decompressed) body contains the substring; it then applies `count` times (None: forever):

    status       answer this status instead of forwarding (with an InfluxDB-style
                 ``{"error": ...}`` body and `retry_after` as ``Retry-After``)
    body         with `status`: answer this text (as text/html) instead of the error
                 body, as a login page or another server in front of InfluxDB would
    delay        seconds to wait before anything else (alone: forward after the delay)
    drop         "before": close the connection without forwarding or answering
                 (also what a client sees while the upstream is down);
                 "after": forward to upstream, then close without answering (the write
                 landed but the client cannot know — the idempotency case)
    reject       substring; matching requests get `status` (default 400). With `partial`,
                 the other lines are forwarded first and the answer is influxd 1.x's
                 "partial write" 400 (influxd writes the good lines of a bad batch).

Bodies are forwarded byte for byte (gzip stays gzip; only inspected decompressed).

In tests use :class:`FaultProxy` (a :class:`tests.services.Service`): ``set_fault``,
``clear``, ``requests``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gzip
import json
import sys
import time
import zlib
from pathlib import Path
from typing import Any

from aiohttp import ClientError, ClientSession, ClientTimeout, TCPConnector, web

from tests.services import HOST, Service, ServiceError, http_request

ROOT = Path(__file__).resolve().parent.parent

# Hop-by-hop and length headers: aiohttp sets its own on each side.
_SKIP_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "keep-alive"}


@dataclasses.dataclass
class Fault:
    status: int | None = None
    count: int | None = 1
    retry_after: str | None = None
    delay: float = 0.0
    drop: str | None = None  # "before" | "after"
    reject: str | None = None
    partial: bool = False
    path: str | None = None
    message: str | None = None
    body: str | None = None

    def __post_init__(self) -> None:
        if self.drop not in (None, "before", "after"):
            raise ValueError(f"drop must be 'before' or 'after', not {self.drop!r}")
        if self.reject is not None and self.status is None:
            self.status = 400
        if self.count is not None and self.count < 1:
            raise ValueError("count must be >= 1 or None")
        if self.retry_after is not None:
            self.retry_after = str(self.retry_after)


def _decoded(body: bytes, encoding: str) -> bytes:
    try:
        if encoding == "gzip":
            return gzip.decompress(body)
        if encoding == "deflate":
            return zlib.decompress(body)
    except (OSError, zlib.error, EOFError):
        return b""
    return body


class Proxy:
    def __init__(self, upstream: str, record_bodies: bool) -> None:
        self.upstream = upstream.rstrip("/")
        self.record_bodies = record_bodies
        self.faults: list[Fault] = []
        self.log: list[dict[str, Any]] = []
        self.session: ClientSession | None = None

    def _take(self, path: str, text: bytes) -> Fault | None:
        for fault in self.faults:
            if fault.path and not path.startswith(fault.path):
                continue
            if fault.reject is not None and fault.reject.encode() not in text:
                continue
            if fault.count is not None:
                fault.count -= 1
                if fault.count == 0:
                    self.faults.remove(fault)
            return fault
        return None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()  # raw: the server runs with auto_decompress=False
        text = _decoded(body, request.headers.get("Content-Encoding", "").lower())
        fault = self._take(request.path, text)
        entry: dict[str, Any] = {
            "time": time.time(),
            "method": request.method,
            "path": request.path,
            "query": dict(request.query),
            "headers": dict(request.headers),
            "body_length": len(body),
            "lines": len([ln for ln in text.splitlines() if ln.strip()]),
            "fault": dataclasses.asdict(fault) if fault else None,
            "status": None,
        }
        if self.record_bodies:
            entry["body"] = text.decode(errors="replace")
        self.log.append(entry)

        if fault and fault.delay:
            await asyncio.sleep(fault.delay)
        if fault and fault.drop == "before":
            return self._drop(request)
        if fault and fault.status and not fault.partial:
            entry["status"] = fault.status
            return self._error(fault, fault.message or f"fault injected: {fault.status}")

        skip = _SKIP_HEADERS
        if fault and fault.partial and fault.reject is not None:
            # influxd 1.x writes the lines that parse and answers 400 "partial write".
            body = b"\n".join(ln for ln in text.splitlines() if fault.reject.encode() not in ln)
            skip = skip | {"content-encoding"}  # forwarded decompressed
        headers = {k: v for k, v in request.headers.items() if k.lower() not in skip}
        assert self.session is not None
        url = self.upstream + request.rel_url.raw_path_qs
        try:
            async with self.session.request(request.method, url, headers=headers, data=body) as up:
                payload = await up.read()
                status, up_headers = up.status, up.headers
        except ClientError as e:
            # Upstream down (influxd stopped): the client sees a failed connection, as it
            # would without the proxy, not a 502 it could mistake for an InfluxDB answer.
            entry["upstream_error"] = repr(e)
            return self._drop(request)
        if fault and fault.drop == "after":
            return self._drop(request)
        if fault and fault.partial:
            entry["status"] = fault.status
            msg = f'partial write: unable to parse line containing "{fault.reject}"'
            return self._error(fault, fault.message or msg)
        entry["status"] = status
        out = {k: v for k, v in up_headers.items() if k.lower() not in _SKIP_HEADERS}
        return web.Response(status=status, headers=out, body=payload)

    @staticmethod
    def _error(fault: Fault, message: str) -> web.Response:
        if fault.body is not None:
            return web.Response(status=fault.status or 500, text=fault.body,
                                content_type="text/html")
        headers = {"X-Influxdb-Error": message, "Content-Type": "application/json"}
        if fault.retry_after is not None:
            headers["Retry-After"] = fault.retry_after
        return web.Response(
            status=fault.status or 500, headers=headers, text=json.dumps({"error": message})
        )

    @staticmethod
    def _drop(request: web.Request) -> web.StreamResponse:
        if request.transport is not None:
            request.transport.abort()  # RST, no HTTP answer at all
        raise asyncio.CancelledError  # aiohttp treats a cancelled handler as a lost client

    # -- control API

    async def add_fault(self, request: web.Request) -> web.Response:
        try:
            fault = Fault(**await request.json())
        except (TypeError, ValueError) as e:
            return web.json_response({"error": str(e)}, status=400)
        self.faults.append(fault)
        return web.json_response(dataclasses.asdict(fault))

    async def clear_faults(self, request: web.Request) -> web.Response:
        self.faults.clear()
        return web.json_response({"ok": True})

    async def get_requests(self, request: web.Request) -> web.Response:
        return web.json_response(self.log)

    async def clear_requests(self, request: web.Request) -> web.Response:
        self.log.clear()
        return web.json_response({"ok": True})

    async def health(self, request: web.Request) -> web.Response:
        return web.Response(text="OK")


async def serve(listen: int, control: int, upstream: str, record_bodies: bool) -> None:
    proxy = Proxy(upstream, record_bodies)
    # force_close: a pooled connection to an influxd that a test restarted would fail the
    # next request; one connection per request costs little on loopback.
    proxy.session = ClientSession(
        connector=TCPConnector(force_close=True),
        timeout=ClientTimeout(total=60),
        auto_decompress=False,
    )
    main_app = web.Application(client_max_size=1024**3)
    main_app.router.add_route("*", "/{tail:.*}", proxy.handle)
    ctl = web.Application()
    ctl.router.add_post("/faults", proxy.add_fault)
    ctl.router.add_delete("/faults", proxy.clear_faults)
    ctl.router.add_get("/requests", proxy.get_requests)
    ctl.router.add_delete("/requests", proxy.clear_requests)
    ctl.router.add_get("/health", proxy.health)
    # auto_decompress=False: a gzip body is forwarded as the client sent it.
    runners = [
        web.AppRunner(main_app, auto_decompress=False, access_log=None),
        web.AppRunner(ctl, access_log=None),
    ]
    for runner, port in zip(runners, (listen, control), strict=True):
        await runner.setup()
        await web.TCPSite(runner, HOST, port).start()
    print(f"faultproxy: {HOST}:{listen} -> {upstream}, control on {HOST}:{control}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        for runner in runners:
            await runner.cleanup()
        await proxy.session.close()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m tests.faultproxy", description=__doc__.split("\n")[0]
    )
    p.add_argument("--listen", type=int, required=True)
    p.add_argument("--upstream", required=True)
    p.add_argument("--control", type=int, required=True)
    p.add_argument("--record-bodies", action="store_true")
    args = p.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.listen, args.control, args.upstream, args.record_bodies))


class FaultProxy(Service):
    """The proxy as a managed subprocess: `url` is the proxied side (give it to the
    gateway as the InfluxDB url), `control_url` the control API."""

    name = "faultproxy"
    extra_port_count = 1

    def __init__(self, upstream: str, *, record_bodies: bool = False, **kw: Any) -> None:
        super().__init__(**kw)
        self.upstream = upstream
        self.record_bodies = record_bodies

    binary = sys.executable

    @property
    def control_url(self) -> str:
        return f"http://{HOST}:{self.extra_ports[0]}"

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "tests.faultproxy", "--listen", str(self.port)]
        cmd += ["--upstream", self.upstream, "--control", str(self.extra_ports[0])]
        return cmd + (["--record-bodies"] if self.record_bodies else [])

    def env(self) -> dict[str, str]:
        env = super().env()
        env["PYTHONPATH"] = str(ROOT) + (":" + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def probe(self) -> bool:
        status, _, _ = http_request("GET", f"{self.control_url}/health", timeout=1.0)
        return status == 200

    def _control(self, method: str, path: str, payload: Any = None) -> Any:
        body = json.dumps(payload).encode() if payload is not None else None
        headers = {"Content-Type": "application/json"} if body else {}
        status, _, answer = http_request(method, self.control_url + path, body, headers)
        if status != 200:
            raise ServiceError(f"faultproxy {method} {path}: HTTP {status}: {answer[:300]!r}")
        return json.loads(answer)

    def set_fault(
        self,
        status: int | None = None,
        *,
        count: int | None = 1,
        retry_after: int | str | None = None,
        delay: float = 0.0,
        drop: str | None = None,
        reject: str | None = None,
        partial: bool = False,
        path: str | None = None,
        message: str | None = None,
        body: str | None = None,
    ) -> None:
        """Add a fault for the next `count` matching requests (None: until clear())."""
        spec = Fault(
            status,
            count,
            None if retry_after is None else str(retry_after),
            delay,
            drop,
            reject,
            partial,
            path,
            message,
            body,
        )
        self._control("POST", "/faults", dataclasses.asdict(spec))

    def clear(self, *, requests: bool = False) -> None:
        """Remove every fault (and, with `requests`, the recorded requests)."""
        self._control("DELETE", "/faults")
        if requests:
            self.clear_requests()

    def clear_requests(self) -> None:
        self._control("DELETE", "/requests")

    def requests(self, path: str | None = None) -> list[dict[str, Any]]:
        """Recorded requests, oldest first (only those whose path starts with `path`)."""
        log: list[dict[str, Any]] = self._control("GET", "/requests")
        return [r for r in log if path is None or r["path"].startswith(path)]


if __name__ == "__main__":
    main()
