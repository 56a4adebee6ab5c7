"""InfluxDB 2.x/3.x: ``/api/v2/write`` with a token, through ``influxdb-client``'s async API.

The client serialises nothing here: Outpost hands it finished line protocol,
which it gzips and posts; its errors are mapped onto :class:`WriteError`.
"""

from __future__ import annotations

import aiohttp
from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync
from influxdb_client.client.write_api import WritePrecision
from influxdb_client.rest import ApiException

from gateway.config.schema import InfluxConfig
from gateway.config.security import redact_url, redact_urls_in
from gateway.influx.sink import WriteError, encode_body, kind_of, parse_retry_after


class InfluxV2Sink:
    def __init__(
        self,
        url: str,
        token: str,
        org: str,
        bucket: str,
        *,
        timeout: float = 10.0,
        use_gzip: bool = True,
    ) -> None:
        self._url = url.rstrip("/")
        self._token = token
        self._org = org
        self._bucket = bucket
        self._timeout_ms = int(timeout * 1000)
        self._gzip = use_gzip
        self._client: InfluxDBClientAsync | None = None

    def describe(self) -> str:
        return f"InfluxDB 2.x {redact_url(self._url)} org {self._org} bucket {self._bucket}"

    async def open(self) -> None:
        self._client = InfluxDBClientAsync(
            url=self._url,
            token=self._token,
            org=self._org,
            timeout=self._timeout_ms,
            enable_gzip=self._gzip,
        )

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def write(self, body: str) -> None:
        assert self._client is not None, "open() first"
        data = encode_body(body)
        try:
            await self._client.write_api().write(
                bucket=self._bucket,
                org=self._org,
                record=data,
                write_precision=WritePrecision.NS,
            )
        except ApiException as exc:
            status = int(exc.status or 0)
            headers = exc.headers or {}
            body_text = (
                exc.body.decode("utf-8", "replace")
                if isinstance(exc.body, bytes)
                else (str(exc.body or exc.reason or ""))
            )
            raise WriteError(
                kind_of(status),
                f"InfluxDB answered {status}: {body_text[:500]}",
                status,
                parse_retry_after(headers.get("Retry-After")),
            ) from None
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise WriteError(
                "connection",
                f"InfluxDB unreachable: {type(exc).__name__}: {redact_urls_in(str(exc))}",
            ) from None


def from_config(cfg: InfluxConfig) -> InfluxV2Sink:
    assert cfg.token is not None and cfg.org and cfg.bucket  # the config's api is v2 only then
    return InfluxV2Sink(
        cfg.url,
        cfg.token.get_secret_value(),
        cfg.org,
        cfg.bucket,
        timeout=cfg.timeout,
        use_gzip=cfg.gzip,
    )
