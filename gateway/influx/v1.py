"""InfluxDB 1.x: ``POST /write?db=…&rp=…&precision=ns`` with HTTP Basic auth.

Credentials travel in the ``Authorization`` header, never in the URL (URLs end
up in proxy and server logs). The database is created at start if missing
(``CREATE DATABASE`` is a no-op when it exists), with ``retention`` if set.
"""

from __future__ import annotations

import gzip

import aiohttp

from gateway.config.schema import InfluxConfig
from gateway.config.security import redact_url, redact_urls_in
from gateway.influx.sink import WriteError, encode_body, kind_of, parse_retry_after


def _quote_ident(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


class InfluxV1Sink:
    def __init__(
        self,
        url: str,
        database: str,
        *,
        username: str | None = None,
        password: str | None = None,
        retention_policy: str | None = None,
        retention_seconds: float | None = None,
        timeout: float = 10.0,
        use_gzip: bool = True,
    ) -> None:
        self._url = url.rstrip("/")
        self._database = database
        self._rp = retention_policy
        self._retention = retention_seconds
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._gzip = use_gzip
        self._auth = aiohttp.BasicAuth(username, password or "") if username else None
        self._session: aiohttp.ClientSession | None = None
        self._created = False

    def describe(self) -> str:
        return f"InfluxDB 1.x {redact_url(self._url)} database {self._database}"

    async def open(self) -> None:
        self._session = aiohttp.ClientSession(timeout=self._timeout, auth=self._auth)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def ensure_database(self) -> None:
        statement = f"CREATE DATABASE {_quote_ident(self._database)}"
        if self._retention:
            statement += f" WITH DURATION {int(self._retention)}s"
        await self._post("/query", data={"q": statement}, params=None)
        self._created = True

    async def write(self, body: str) -> None:
        if not self._created:
            await self.ensure_database()
        params = {"db": self._database, "precision": "ns"}
        if self._rp:
            params["rp"] = self._rp
        data = encode_body(body)
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if self._gzip:
            data = gzip.compress(data, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        try:
            await self._post("/write", data=data, params=params, headers=headers)
        except WriteError as exc:
            if exc.kind == "not_found":
                self._created = False  # dropped behind our back: create it again next time
            raise

    async def _post(
        self,
        path: str,
        *,
        data: object,
        params: dict[str, str] | None,
        headers: dict[str, str] | None = None,
    ) -> None:
        assert self._session is not None, "open() first"
        try:
            async with self._session.post(
                self._url + path, data=data, params=params, headers=headers
            ) as resp:
                if 200 <= resp.status < 300:
                    if path == "/query":
                        answer = await resp.json(content_type=None)
                        error = _query_error(answer)
                        if error:
                            raise WriteError(kind_of(400), f"InfluxDB: {error}", 400)
                    return
                text = (await resp.text())[:500]
                raise WriteError(
                    kind_of(resp.status),
                    f"InfluxDB answered {resp.status}: {text}",
                    resp.status,
                    parse_retry_after(resp.headers.get("Retry-After")),
                )
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise WriteError(
                "connection",
                f"InfluxDB unreachable: {type(exc).__name__}: {redact_urls_in(str(exc))}",
            ) from None


def _query_error(answer: object) -> str | None:
    if isinstance(answer, dict):
        if "error" in answer:
            return str(answer["error"])
        for result in answer.get("results", []):
            if isinstance(result, dict) and "error" in result:
                return str(result["error"])
    return None


def from_config(cfg: InfluxConfig) -> InfluxV1Sink:
    return InfluxV1Sink(
        cfg.url,
        cfg.db,
        username=cfg.username,
        password=cfg.password.get_secret_value() if cfg.password else None,
        retention_policy=cfg.retention_policy,
        retention_seconds=cfg.retention,
        timeout=cfg.timeout,
        use_gzip=cfg.gzip,
    )
