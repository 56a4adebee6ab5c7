"""The gateway's own Prometheus metrics, every one named ``outpost_…``.

One :class:`Metrics` per gateway instance, each with its own registry, so that
tests can run several gateways in one process. Hot-path counters are resolved
to their labelled child once and kept (``labels()`` costs a dict lookup and a
lock per call).

Counters and histograms count where things happen. A level (a queue's length,
a device's online state, a bridge's own counters) is read from the component
that owns it when Prometheus scrapes, never copied on the hot path or from a
polling task: the component declares its :class:`Family` list and a function
yielding :data:`Sample` tuples, and :meth:`Metrics.read_at_scrape` registers them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

Sample = tuple[str, Sequence[str], float]
"""``(family name, label values, value)``: one value a component reports at scrape time."""


@dataclass(frozen=True, slots=True)
class Family:
    """A metric family whose values are read at scrape time (``kind`` as Prometheus has it)."""

    name: str
    help: str
    labels: tuple[str, ...] = ()
    kind: Literal["gauge", "counter"] = "gauge"

    def empty(self) -> GaugeMetricFamily | CounterMetricFamily:
        if self.kind == "counter":
            return CounterMetricFamily(self.name, self.help, labels=self.labels)
        return GaugeMetricFamily(self.name, self.help, labels=self.labels)


class _ReadAtScrape(Collector):
    """The families of one component, filled from its ``samples()`` on every scrape."""

    def __init__(self, families: Sequence[Family], samples: Callable[[], Iterable[Sample]]) -> None:
        self._families = tuple(families)
        self._samples = samples

    def describe(self) -> list[Metric]:
        return [family.empty() for family in self._families]

    def collect(self) -> Iterator[Metric]:
        built = {family.name: family.empty() for family in self._families}
        for name, labels, value in self._samples():
            built[name].add_metric(labels, value)
        return iter(built.values())


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.readings = Counter(
            "outpost_readings_total", "Readings decoded, by input", ["input"], registry=r
        )
        self.messages = Counter(
            "outpost_messages_total",
            "MQTT messages received, by input and outcome (decoded, deadlettered, unmatched)",
            ["input", "outcome"],
            registry=r,
        )
        self.deadletters = Counter(
            "outpost_deadletters_total",
            "Messages and points sent to the dead-letter topic, by reason",
            ["reason"],
            registry=r,
        )
        self.dropped = Counter(
            "outpost_dropped_total",
            "Readings dropped without being stored, by reason",
            ["reason"],
            registry=r,
        )
        self.points_written = Counter(
            "outpost_influx_points_written_total", "Points InfluxDB answered 2xx for", registry=r
        )
        self.influx_errors = Counter(
            "outpost_influx_errors_total", "Failed InfluxDB writes, by kind", ["kind"], registry=r
        )
        self.influx_write_seconds = Histogram(
            "outpost_influx_write_seconds",
            "Duration of successful InfluxDB writes",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.mqtt_reconnects = Counter(
            "outpost_mqtt_reconnects_total", "Connections to the broker after the first", registry=r
        )
        self.rule_eval_seconds = Histogram(
            "outpost_rule_evaluation_seconds",
            "Time to evaluate the rules for one reading (sampled: one reading in 64)",
            buckets=(1e-6, 5e-6, 1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 0.01),
            registry=r,
        )
        self.alert_events = Counter(
            "outpost_alert_events_total", "Alert events published, by state", ["state"], registry=r
        )
        self.commands = Counter(
            "outpost_commands_total", "Device commands, by outcome", ["outcome"], registry=r
        )
        self.rule_reloads = Counter(
            "outpost_rule_reloads_total",
            "Rule file reloads, applied or refused",
            ["outcome"],
            registry=r,
        )
        self.notifications = Counter(
            "outpost_notifications_total",
            "Notifications, by notifier and outcome (sent, failed, dropped, silenced)",
            ["notifier", "outcome"],
            registry=r,
        )
        self.notify_seconds = Histogram(
            "outpost_notification_seconds", "Time to deliver a notification", registry=r
        )
        self.inhibited = Counter(
            "outpost_alerts_inhibited_total",
            "Absence alerts not notified because the gateway or the "
            "broker was down during their window",
            registry=r,
        )
        self.outbox_appended = Counter(
            "outpost_outbox_appended_total",
            "Readings made durable in the outbox while InfluxDB was failing",
            registry=r,
        )
        self.outbox_backfilled = Counter(
            "outpost_outbox_backfilled_total",
            "Readings sent from the outbox after an outage",
            registry=r,
        )
        self.skipped = Counter(
            "outpost_readings_skipped_total",
            "Readings not written to InfluxDB on purpose, by reason (deadband)",
            ["reason"],
            registry=r,
        )
        self.time_corrections = Counter(
            "outpost_time_corrections_total",
            "Messages whose device time was out of tolerance, by action (restamp, tag)",
            ["action"],
            registry=r,
        )
        self.held = Counter(
            "outpost_clock_held_messages_total",
            "Messages held because the gateway's clock was not set yet",
            registry=r,
        )

    def read_at_scrape(
        self, families: Sequence[Family], samples: Callable[[], Iterable[Sample]]
    ) -> Collector:
        """Expose ``families``, filled on every scrape from what ``samples()`` yields.

        Every family is exposed (empty if no sample names it). Returns the collector,
        for ``registry.unregister`` when the component stops before the gateway does.
        """
        return read_at_scrape(self.registry, families, samples)


def read_at_scrape(
    registry: CollectorRegistry,
    families: Sequence[Family],
    samples: Callable[[], Iterable[Sample]],
) -> Collector:
    """:meth:`Metrics.read_at_scrape` on any registry (the HTTP layer holds only the registry)."""
    collector = _ReadAtScrape(families, samples)
    registry.register(collector)
    return collector
