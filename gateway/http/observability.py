"""Metrics of the HTTP side and the live view, computed at scrape time.

Registered on the gateway's own registry (``Metrics.registry``) so that
``/metrics`` shows them with the rest; nothing here touches the reading hot
path. Families:

- ``outpost_info{version}`` — 1; the running version.
- ``outpost_start_time_seconds`` — when the gateway started (Unix time).
- ``outpost_pipeline_pending_messages`` — messages decoded and waiting for the event loop.
- ``outpost_live_series`` / ``outpost_live_series_refused_total`` — sparkline series
  kept, and readings of series beyond ``http.live_max_series`` not shown.
- ``outpost_http_stream_clients`` — dashboards connected to ``/api/v1/stream``;
  ``outpost_http_stream_dropped_clients_total`` — streams closed because the browser
  fell ``QUEUE_MAX`` diffs behind.
- ``outpost_http_requests_total{route,status}`` — by route template (bounded labels).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gateway.http.stream import Stream
from gateway.status import views
from gateway.status.live import NS
from gateway.status.model import StatusModel


class HttpCollector(Collector):
    def __init__(self, model: StatusModel, stream: Stream) -> None:
        self._model = model
        self._stream = stream
        self.requests: Counter[tuple[str, str]] = Counter()

    def describe(self) -> list[Metric]:
        return list(self._families(empty=True))

    def collect(self) -> Iterator[Metric]:
        return self._families(empty=False)

    def _families(self, empty: bool) -> Iterator[Metric]:
        info = GaugeMetricFamily("outpost_info", "The running Outpost version", labels=["version"])
        started = GaugeMetricFamily(
            "outpost_start_time_seconds", "When the gateway started (Unix time)"
        )
        pending = GaugeMetricFamily(
            "outpost_pipeline_pending_messages", "Decoded messages waiting for the event loop"
        )
        series = GaugeMetricFamily(
            "outpost_live_series", "Series (device, metric) with a dashboard sparkline"
        )
        refused = CounterMetricFamily(
            "outpost_live_series_refused",
            "Readings of series beyond http.live_max_series, not shown",
        )
        clients = GaugeMetricFamily(
            "outpost_http_stream_clients", "Dashboards connected to the live stream"
        )
        dropped = CounterMetricFamily(
            "outpost_http_stream_dropped_clients", "Streams closed because the browser fell behind"
        )
        requests = CounterMetricFamily(
            "outpost_http_requests",
            "HTTP requests, by route and status",
            labels=["route", "status"],
        )
        if not empty:
            info.add_metric([views.VERSION], 1.0)
            started.add_metric([], views.STARTED_NS / NS)
            live = self._model.live
            pending.add_metric([], float(self._model.pipeline_pending()))
            series.add_metric([], float(live.series_count))
            refused.add_metric([], float(live.refused))
            clients.add_metric([], float(self._stream.clients))
            dropped.add_metric([], float(self._stream.dropped_clients))
            for (route, status), n in sorted(self.requests.items()):
                requests.add_metric([route, status], float(n))
        yield from (info, started, pending, series, refused, clients, dropped, requests)
