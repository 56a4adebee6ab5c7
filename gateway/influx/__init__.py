"""Writing readings to InfluxDB: line protocol, the 1.x and 2.x APIs, batching."""

from __future__ import annotations

from gateway.config.schema import InfluxConfig
from gateway.influx.sink import InfluxSink, WriteError


def make_sink(cfg: InfluxConfig) -> InfluxSink:
    """The sink for the configured API: 2.x when org+bucket+token, else 1.x."""
    if cfg.api == "v2":
        from gateway.influx.v2 import InfluxV2Sink

        assert cfg.token is not None and cfg.org and cfg.bucket
        return InfluxV2Sink(
            cfg.url,
            cfg.token.get_secret_value(),
            cfg.org,
            cfg.bucket,
            timeout=cfg.timeout,
            use_gzip=cfg.gzip,
        )
    from gateway.influx.v1 import InfluxV1Sink

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


__all__ = ["InfluxSink", "WriteError", "make_sink"]
