"""Writing readings to InfluxDB: line protocol, the 1.x and 2.x APIs, batching.

Sinks register by API name in :data:`SINKS` (``v1``: ``/write`` with a database,
``v2``: ``/api/v2/write`` with org, bucket and token); the config's
``influx.api`` picks one. Adding a sink is adding a module with a class that
satisfies :class:`gateway.influx.sink.InfluxSink`, a ``from_config`` and one line here.
The line protocol dialect follows the server (``influx.server``) and, for InfluxDB,
the API: ``/api/v2/write`` means InfluxDB 2, which reserves names starting with ``_``.
"""

from __future__ import annotations

from collections.abc import Callable

from gateway.config.schema import InfluxConfig
from gateway.influx import v1, v2
from gateway.influx.lineproto import INFLUXDB_1, INFLUXDB_2, VICTORIAMETRICS, LineEncoder
from gateway.influx.sink import InfluxSink, WriteError

SINKS: dict[str, Callable[[InfluxConfig], InfluxSink]] = {
    "v1": v1.from_config,
    "v2": v2.from_config,
}


def make_sink(cfg: InfluxConfig) -> InfluxSink:
    """The sink for the configured API: 2.x when org+bucket+token, else 1.x."""
    return SINKS[cfg.api](cfg)


def make_encoder(cfg: InfluxConfig) -> LineEncoder:
    """The line protocol encoder for the configured server and API."""
    if cfg.server == "victoriametrics":
        return LineEncoder(VICTORIAMETRICS)
    return LineEncoder(INFLUXDB_2 if cfg.api == "v2" else INFLUXDB_1)


__all__ = ["SINKS", "InfluxSink", "WriteError", "make_encoder", "make_sink"]
