"""Builds the running parts of the gateway from its config; starts nothing.

Each component gets what it needs passed in, in the order the data flows:
source → pipeline → writer (→ InfluxDB or the outbox) with acknowledgements
back to the source; pipeline → rules → alerts and commands; and the read
model and controls the HTTP layer sees. Nothing here connects, opens a port
or starts a task: :mod:`gateway.app` owns the lifecycle.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from dataclasses import dataclass
from typing import Any

from devices import catalog
from gateway.actions.alerts import AlertBus, DeafPeriods, system_alert
from gateway.actions.dispatcher import CommandDispatcher
from gateway.actions.notify import Notifications
from gateway.actions.rules_runtime import RulesRuntime, load_rule_files
from gateway.actions.silences import Silences
from gateway.config import Config, LoadedConfig
from gateway.deadletter import DeadLetters
from gateway.devices_runtime import DevicesRuntime
from gateway.http.server import HttpServer
from gateway.influx import make_sink
from gateway.influx.lineproto import LineEncoder, Unwritable
from gateway.influx.sink import InfluxSink
from gateway.influx.writer import InfluxWriter
from gateway.ingest.deadband import Deadband
from gateway.ingest.pipeline import Input, Pipeline
from gateway.ingest.source import Source, create_source
from gateway.ingest.timekeeping import TimePolicy
from gateway.journal import Journal
from gateway.metrics import Metrics
from gateway.mqtt import subscriber as _mqtt_source  # noqa: F401  (registers the "mqtt" source)
from gateway.mqtt.link import MqttLink
from gateway.outbox import DiskOutbox, OutboxError
from gateway.status.controls import Controls
from gateway.status.live import LiveState
from gateway.status.model import StatusModel
from gateway.topics import TopicTemplate

log = logging.getLogger("outpost")

EVENTS_TOPIC = "outpost/events"  # the topic alert and command points name in the writer


@dataclass(frozen=True)
class Components:
    """Everything the gateway runs, built and connected to each other, not yet started."""

    config: Config
    metrics: Metrics
    journal: Journal
    deaf: DeafPeriods
    sink: InfluxSink
    outbox: DiskOutbox | None
    source: Source
    link: MqttLink
    writer: InfluxWriter
    pipeline: Pipeline
    devices: DevicesRuntime
    notifications: Notifications
    dispatcher: CommandDispatcher
    rules: RulesRuntime
    http: HttpServer


def check_rules(config: Config) -> None:
    """Validate the rule files: bad rules fail the start, before any connection."""
    load_rule_files(config.rules)


def open_outbox(cfg: Config) -> DiskOutbox | None:
    """The disk outbox, or None (memory only) when disabled or the disk cannot hold it."""
    if not cfg.outbox.enabled:
        return None
    try:
        return DiskOutbox(cfg.state_dir, max_bytes=cfg.outbox.max_bytes, max_age=cfg.outbox.max_age)
    except (OSError, sqlite3.Error, OutboxError) as exc:
        log.error(
            "cannot open the outbox in %s (%s): readings wait in memory only while "
            "InfluxDB is unreachable",
            cfg.state_dir,
            exc,
        )
        return None


def build_inputs(cfg: Config) -> list[Input]:
    inputs = []
    for spec in cfg.inputs:
        deadband = Deadband(spec.deadband, spec.heartbeat) if spec.deadband is not None else None
        inputs.append(
            Input(
                name=spec.topic,
                template=TopicTemplate(spec.topic),
                decoder=catalog.get(spec.format)(spec.model_dump()),
                qos=spec.qos,
                max_payload=spec.max_payload,
                time_policy=TimePolicy(spec.future_tolerance, spec.past_tolerance, spec.bad_time),
                deadband=deadband,
                max_readings=spec.max_readings_per_message,
            )
        )
    return inputs


def build(
    loaded: LoadedConfig, journal: Journal, metrics: Metrics, loop: asyncio.AbstractEventLoop
) -> Components:
    """Build every component for ``loaded`` around an open ``journal``."""
    cfg = loaded.config
    inputs = build_inputs(cfg)
    deaf = DeafPeriods()
    deaf.deaf(since=journal.last_alive())  # nothing was heard between the last run and now

    link = MqttLink(cfg.mqtt, loop)
    source = create_source(
        "mqtt",
        cfg,
        [(i.template.filter, i.qos) for i in inputs],
        metrics,
        on_state=lambda up: loop.call_soon_threadsafe(deaf.hearing if up else deaf.deaf),
    )
    deadletters = DeadLetters(lambda topic, payload: link.publish(topic, payload, qos=0), metrics)
    sink = make_sink(cfg.influx)
    outbox = open_outbox(cfg)

    writer = InfluxWriter(
        sink,
        batch_size=cfg.influx.batch_size,
        flush_interval=cfg.influx.flush_interval,
        max_buffer=cfg.influx.max_buffer,
        deadletters=deadletters,
        metrics=metrics,
        on_acked=source.ack,
        outbox=outbox,
        backfill_rate=cfg.outbox.backfill_rate,
    )
    pipeline = Pipeline(
        inputs,
        writer=writer,
        deadletters=deadletters,
        metrics=metrics,
        loop=loop,
        max_batch=cfg.influx.batch_size,
        clock_valid_after=cfg.clock.valid_after_ns,
        unsynced=cfg.clock.unsynced,
        hold_max=cfg.clock.hold_max,
        device_tags={name: d.tags for name, d in cfg.devices.items()},
        max_series=cfg.influx.max_series,
    )
    devices = DevicesRuntime(loaded, metrics)
    pipeline.add_observer(devices.observe)
    link.subscribe(devices.availability_filters(), devices.on_message)

    silences = Silences(journal.db)
    notifications = Notifications(cfg.notify, silences=silences, journal=journal, metrics=metrics)
    bus = AlertBus(
        publish=link.publish,
        journal=journal,
        write_line=lambda line: writer.add(line, None, EVENTS_TOPIC),
        notify=notifications.submit,
        metrics=metrics,
        deaf=deaf,
    )
    writer.watch_auth(
        lambda failing, status: bus.emit(
            influx_auth_alert(failing, status, journal.now()), journal.now()
        )
    )

    encoder = LineEncoder()

    def write_point(measurement: str, tags: object, fields: object, ts: int) -> None:
        try:
            line = encoder.encode_point(measurement, tags, fields, ts)  # type: ignore[arg-type]
        except Unwritable:
            return
        writer.add(line, None, EVENTS_TOPIC)

    dispatcher = CommandDispatcher(
        cfg.devices,
        link=link,
        journal=journal,
        metrics=metrics,
        on_alert=lambda event: bus.emit(event, journal.now()),
        on_point=write_point,
        source_id=cfg.mqtt.client_id,
    )
    rules = RulesRuntime(
        cfg.rules, journal=journal, bus=bus, dispatcher=dispatcher, metrics=metrics
    )
    if rules.rule_count:
        pipeline.add_observer(rules.observe)

    live = LiveState(max_series=cfg.http.live_max_series)
    if cfg.http.dashboard:
        pipeline.add_observer(live.observe)
    model = StatusModel(
        live=live,
        registry=metrics.registry,
        devices=devices,
        rules=rules,
        journal=journal,
        source_connected=lambda: source.connected,
        writer_buffered=lambda: writer.buffered,
        pipeline_pending=lambda: pipeline.pending,
        has_outbox=outbox is not None,
        refresh_gauges=lambda: refresh_gauges(metrics, writer, rules),
    )
    http = HttpServer(model, Controls(dispatcher, silences, rules), cfg.http)
    return Components(
        config=cfg,
        metrics=metrics,
        journal=journal,
        deaf=deaf,
        sink=sink,
        outbox=outbox,
        source=source,
        link=link,
        writer=writer,
        pipeline=pipeline,
        devices=devices,
        notifications=notifications,
        dispatcher=dispatcher,
        rules=rules,
        http=http,
    )


def refresh_gauges(metrics: Metrics, writer: InfluxWriter, rules: RulesRuntime) -> None:
    """Gauges read from the writer and the rules engine, just before a scrape."""
    metrics.influx_buffered.set(writer.buffered)
    counters = rules.counters()
    metrics.alerts_active.labels("pending").set(counters.get("alerts_pending", 0))
    metrics.alerts_active.labels("firing").set(counters.get("alerts_firing", 0))
    metrics.rules_loaded.set(counters.get("rules", 0))
    metrics.rule_undefined.set(counters.get("undefined", 0))
    metrics.window_points.set(counters.get("window_points", 0))


def influx_auth_alert(failing: bool, status: int | None, at: int) -> dict[str, Any]:
    """The gateway's own alert while InfluxDB refuses its credentials."""
    return system_alert(
        rule="influx_unauthorized",
        device="influxdb",
        firing=failing,
        at_ns=at,
        severity="critical",
        value=status,
        message=(
            f"InfluxDB refuses the gateway's credentials (HTTP {status}); "
            "readings are kept in the outbox"
            if failing
            else "InfluxDB accepts the gateway's credentials again"
        ),
    )
