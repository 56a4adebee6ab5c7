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
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from devices import catalog, conventions
from devices.conventions import Convention
from devices.decoding import Decoder
from gateway.actions.alerts import AlertBus, DeafPeriods, system_alert
from gateway.actions.dispatcher import CommandDispatcher
from gateway.actions.notify import Notifications
from gateway.actions.rules_runtime import RulesRuntime
from gateway.actions.silences import Silences
from gateway.config import Config, LoadedConfig
from gateway.deadletter import DeadLetters
from gateway.devices_runtime import DevicesRuntime
from gateway.devices_runtime.sparkplug import SparkplugRuntime
from gateway.http.server import HttpServer
from gateway.influx import make_encoder, make_sink
from gateway.influx.lineproto import Unwritable
from gateway.influx.sink import InfluxSink
from gateway.influx.writer import InfluxWriter
from gateway.ingest.deadband import Deadband
from gateway.ingest.pipeline import Input, Pipeline
from gateway.ingest.source import Source, create_source
from gateway.ingest.timekeeping import TimePolicy
from gateway.journal import Journal
from gateway.metrics import Family, Metrics, Sample
from gateway.modbus.runtime import ModbusRuntime
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
    sparkplug: SparkplugRuntime | None
    modbus: ModbusRuntime
    notifications: Notifications
    dispatcher: CommandDispatcher
    rules: RulesRuntime
    http: HttpServer


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


def build_inputs(cfg: Config, sparkplug: SparkplugRuntime | None = None) -> list[Input]:
    inputs = []
    for spec in cfg.inputs:
        deadband = Deadband(spec.deadband, spec.heartbeat) if spec.deadband is not None else None
        options = spec.model_dump()
        decoder: Decoder = (
            sparkplug.decoder(options)
            if sparkplug is not None and spec.format == "sparkplug"
            else catalog.get(spec.format)(options)
        )
        inputs.append(
            Input(
                name=spec.topic,
                template=TopicTemplate(spec.topic),
                decoder=decoder,
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
    deaf = DeafPeriods()
    deaf.deaf(since=journal.last_alive())  # nothing was heard between the last run and now

    link = MqttLink(cfg.mqtt, loop)
    devices = DevicesRuntime(loaded, metrics)
    sparkplug = None
    if uses_sparkplug(cfg):
        sparkplug = SparkplugRuntime(cfg.sparkplug, link, devices)
        metrics.read_at_scrape(sparkplug.families, sparkplug.samples)
    inputs = build_inputs(cfg, sparkplug)
    source = create_source(
        "mqtt",
        cfg,
        [(i.template.filter, i.qos) for i in inputs],
        metrics,
        on_state=lambda up: loop.call_soon_threadsafe(deaf.hearing if up else deaf.deaf),
    )
    deadletters = DeadLetters(lambda topic, payload: link.publish(topic, payload, qos=0), metrics)
    sink = make_sink(cfg.influx)
    encoder = make_encoder(cfg.influx)
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
        encoder=encoder,
        max_series=cfg.influx.max_series,
    )
    pipeline.add_observer(devices.observe)
    link.subscribe(devices.availability_filters(), devices.on_message)
    modbus = ModbusRuntime(cfg, deliver=pipeline.put, set_online=devices.set_online)

    silences = Silences(journal.db)
    notifications = Notifications(cfg.notify, silences=silences, journal=journal, metrics=metrics)
    bus = AlertBus(
        publish=link.publish,
        journal=journal,
        write_line=lambda line: writer.add(line, None, EVENTS_TOPIC),
        notify=notifications.submit,
        metrics=metrics,
        deaf=deaf,
        encoder=encoder,
    )
    writer.watch_auth(
        lambda failing, status: bus.emit(
            influx_auth_alert(failing, status, journal.now()), journal.now()
        )
    )

    def write_point(measurement: str, tags: object, fields: object, ts: int) -> None:
        try:
            line = encoder.encode_point(measurement, tags, fields, ts)  # type: ignore[arg-type]
        except Unwritable:
            return
        writer.add(line, None, EVENTS_TOPIC)

    dispatcher = CommandDispatcher(
        modbus.command_devices(cfg.devices),
        direct=modbus.writers,
        link=link,
        journal=journal,
        metrics=metrics,
        on_alert=lambda event: bus.emit(event, journal.now()),
        on_point=write_point,
        source_id=cfg.mqtt.client_id,
        convention_for=convention_factory(sparkplug),
    )
    rules = RulesRuntime(
        cfg.rules, journal=journal, bus=bus, dispatcher=dispatcher, metrics=metrics
    )
    if cfg.rules:  # rule files may appear later, with a reload
        pipeline.add_observer(rules.observe)

    for levels in (source, writer, rules, modbus):
        metrics.read_at_scrape(levels.families, levels.samples)
    if outbox is not None:
        metrics.read_at_scrape(OUTBOX_FAMILIES, lambda: outbox_samples(outbox))

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
        broker_health=lambda: {"ingest": source.health(), "link": link.health()},
        influx_health=writer.health,
        writer_buffered=lambda: writer.buffered,
        pipeline_pending=lambda: pipeline.pending,
        has_outbox=outbox is not None,
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
        sparkplug=sparkplug,
        modbus=modbus,
        notifications=notifications,
        dispatcher=dispatcher,
        rules=rules,
        http=http,
    )


def uses_sparkplug(cfg: Config) -> bool:
    """An input or a device speaks Sparkplug: the gateway is then a Sparkplug host."""
    return any(spec.format == "sparkplug" for spec in cfg.inputs) or any(
        d.convention == "sparkplug" for d in cfg.devices.values()
    )


def convention_factory(
    sparkplug: SparkplugRuntime | None,
) -> Callable[[str, Mapping[str, Any]], Convention]:
    """The dispatcher's conventions: Sparkplug devices share the host that decodes their data."""

    def create(name: str, options: Mapping[str, Any]) -> Convention:
        if name == "sparkplug" and sparkplug is not None:
            return sparkplug.convention
        return conventions.create(name, options)

    return create


OUTBOX_FAMILIES = (
    Family("outpost_outbox_readings", "Readings waiting in the outbox"),
    Family("outpost_outbox_bytes", "Bytes waiting in the outbox"),
    Family("outpost_outbox_oldest_age_seconds", "Age of the oldest reading in the outbox"),
    Family("outpost_outbox_degraded", "1 while the outbox falls back to memory (disk full)"),
)


def outbox_samples(outbox: DiskOutbox) -> Iterator[Sample]:
    stats = outbox.stats()
    yield "outpost_outbox_readings", (), float(stats.lines)
    yield "outpost_outbox_bytes", (), float(stats.bytes)
    yield "outpost_outbox_oldest_age_seconds", (), stats.oldest_age
    yield "outpost_outbox_degraded", (), 1.0 if stats.degraded else 0.0


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
