"""Metrics of the HTTP side and the live view, read when Prometheus scrapes.

Registered on the gateway's own registry (``StatusModel.registry``) with
:func:`gateway.metrics.read_at_scrape`, like every other level; nothing here
touches the reading hot path. Families:

- ``outpost_info{version}`` — 1; the running version.
- ``outpost_start_time_seconds`` — when the gateway started (Unix time).
- ``outpost_pipeline_pending_messages`` — messages decoded and waiting for the event loop.
- ``outpost_live_series`` / ``outpost_live_series_refused_total`` — sparkline series
  kept, and readings of series beyond ``http.live_max_series`` not shown.
- ``outpost_http_stream_clients`` — dashboards connected to ``/api/v1/stream``;
  ``outpost_http_stream_dropped_clients_total`` — streams closed because the browser
  fell ``QUEUE_MAX`` diffs behind.
- ``outpost_http_requests_total{route,status}`` — by route template (bounded labels).
- ``outpost_http_connections`` — connections open; ``outpost_http_connections_closed_total{reason}``
  — closed by the server's guard (:mod:`.connections`): ``max_connections`` (answered 503),
  ``header_timeout`` (answered 408), ``stalled`` (the client stopped reading).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from gateway.http.connections import ConnectionGuard
from gateway.http.stream import Stream
from gateway.metrics import Family, Sample
from gateway.status import views
from gateway.status.live import NS
from gateway.status.model import StatusModel

FAMILIES = (
    Family("outpost_info", "The running Outpost version", ("version",)),
    Family("outpost_start_time_seconds", "When the gateway started (Unix time)"),
    Family("outpost_pipeline_pending_messages", "Decoded messages waiting for the event loop"),
    Family("outpost_live_series", "Series (device, metric) with a dashboard sparkline"),
    Family(
        "outpost_live_series_refused",
        "Readings of series beyond http.live_max_series, not shown",
        kind="counter",
    ),
    Family("outpost_http_stream_clients", "Dashboards connected to the live stream"),
    Family(
        "outpost_http_stream_dropped_clients",
        "Streams closed because the browser fell behind",
        kind="counter",
    ),
    Family("outpost_http_requests", "HTTP requests, by route", ("route", "status"), "counter"),
    Family("outpost_http_connections", "HTTP connections open (http.max_connections at most)"),
    Family(
        "outpost_http_connections_closed",
        "HTTP connections the server closed: past max_connections, no request head within "
        "header_timeout, a client that stopped reading",
        ("reason",),
        "counter",
    ),
)


class HttpLevels:
    """The HTTP side's samples; ``requests`` is counted by the server's middleware."""

    families = FAMILIES

    def __init__(self, model: StatusModel, stream: Stream, connections: ConnectionGuard) -> None:
        self._model = model
        self._stream = stream
        self._connections = connections
        self.requests: Counter[tuple[str, str]] = Counter()

    def samples(self) -> Iterator[Sample]:
        live = self._model.live
        yield "outpost_info", (views.VERSION,), 1.0
        yield "outpost_start_time_seconds", (), views.STARTED_NS / NS
        yield "outpost_pipeline_pending_messages", (), float(self._model.pipeline_pending())
        yield "outpost_live_series", (), float(live.series_count)
        yield "outpost_live_series_refused", (), float(live.refused)
        yield "outpost_http_stream_clients", (), float(self._stream.clients)
        yield "outpost_http_stream_dropped_clients", (), float(self._stream.dropped_clients)
        for (route, status), n in sorted(self.requests.items()):
            yield "outpost_http_requests", (route, status), float(n)
        guard = self._connections
        yield "outpost_http_connections", (), float(guard.open)
        for reason, n in (("max_connections", guard.refused),
                          ("header_timeout", guard.header_timeouts), ("stalled", guard.stalled)):
            yield "outpost_http_connections_closed", (reason,), float(n)
