"""Writing readings to InfluxDB: line protocol, the 1.x and 2.x APIs, batching.

Sinks register by API name in :data:`SINKS` (``v1``: ``/write`` with a database,
``v2``: ``/api/v2/write`` with org, bucket and token); the config's
``influx.api`` picks one. Adding a sink is adding a module with a class that
satisfies :class:`gateway.influx.sink.InfluxSink`, a ``from_config`` and one line here.
"""

from __future__ import annotations

from collections.abc import Callable

from gateway.config.schema import InfluxConfig
from gateway.influx import v1, v2
from gateway.influx.sink import InfluxSink, WriteError

SINKS: dict[str, Callable[[InfluxConfig], InfluxSink]] = {
    "v1": v1.from_config,
    "v2": v2.from_config,
}


def make_sink(cfg: InfluxConfig) -> InfluxSink:
    """The sink for the configured API: 2.x when org+bucket+token, else 1.x."""
    return SINKS[cfg.api](cfg)


__all__ = ["SINKS", "InfluxSink", "WriteError", "make_sink"]
