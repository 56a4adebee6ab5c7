"""The running gateway: wires config to ingest, pipeline, writer, rules and actions.

Shutdown order matters for "nothing acknowledged is lost": stop taking new
messages (unacknowledged QoS 1 ones will be redelivered next session), process
what is queued, flush every batch to InfluxDB (acknowledging as they land),
then say ``offline`` and disconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import sqlite3
import sys
from typing import Any

from devices import catalog as registry
from gateway.actions.alerts import AlertBus, DeafPeriods
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
from gateway.influx.writer import InfluxWriter
from gateway.ingest.deadband import Deadband
from gateway.ingest.pipeline import Input, Pipeline
from gateway.ingest.timekeeping import TimePolicy
from gateway.journal import Journal
from gateway.metrics import Metrics
from gateway.mqtt.link import MqttLink
from gateway.mqtt.subscriber import MqttIngest
from gateway.outbox import DiskOutbox, OutboxError
from gateway.topics import TopicTemplate
from rules import rfc3339

log = logging.getLogger("outpost")


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


class Gateway:
    def __init__(self, loaded: LoadedConfig) -> None:
        self.loaded = loaded
        self.config = loaded.config
        self.metrics = Metrics()
        self.ingest: MqttIngest | None = None
        self.link: MqttLink | None = None
        self.writer: InfluxWriter | None = None
        self.pipeline: Pipeline | None = None
        self.rules: RulesRuntime | None = None
        self.dispatcher: CommandDispatcher | None = None
        self.silences: Silences | None = None
        self.journal: Journal | None = None
        self.outbox: DiskOutbox | None = None
        self.devices: DevicesRuntime | None = None
        self.http: HttpServer | None = None
        self.ready = asyncio.Event()
        # Validate the rule files now: bad rules fail the start, before any connection.
        load_rule_files(self.config.rules)

    def _inputs(self) -> list[Input]:
        inputs = []
        for spec in self.config.inputs:
            factory = registry.get(spec.format)
            deadband = (
                Deadband(spec.deadband, spec.heartbeat) if spec.deadband is not None else None
            )
            inputs.append(
                Input(
                    name=spec.topic,
                    template=TopicTemplate(spec.topic),
                    decoder=factory(spec.model_dump()),
                    qos=spec.qos,
                    max_payload=spec.max_payload,
                    time_policy=TimePolicy(
                        spec.future_tolerance, spec.past_tolerance, spec.bad_time
                    ),
                    deadband=deadband,
                )
            )
        return inputs

    async def run(self, stop: asyncio.Event) -> None:
        cfg = self.config
        loop = asyncio.get_running_loop()
        inputs = self._inputs()
        deaf = DeafPeriods()
        self.journal = journal = Journal(cfg.state_dir, retention=cfg.journal.retention)
        last_alive = journal.last_alive()
        deaf.deaf(since=last_alive)  # nothing was heard between the last run and now

        late: dict[str, Any] = {}
        deadletters = DeadLetters(lambda t, p: late["ingest"].publish(t, p, qos=0), self.metrics)
        sink = make_sink(cfg.influx)
        self.outbox = outbox = open_outbox(cfg)
        self.writer = writer = InfluxWriter(
            sink,
            batch_size=cfg.influx.batch_size,
            flush_interval=cfg.influx.flush_interval,
            max_buffer=cfg.influx.max_buffer,
            deadletters=deadletters,
            metrics=self.metrics,
            on_acked=lambda tokens: late["ingest"].ack(tokens),
            outbox=outbox,
            backfill_rate=cfg.outbox.backfill_rate,
        )
        self.pipeline = pipeline = Pipeline(
            inputs,
            writer=writer,
            deadletters=deadletters,
            metrics=self.metrics,
            loop=loop,
            max_batch=cfg.influx.batch_size,
            clock_valid_after=cfg.clock.valid_after_ns,
            unsynced=cfg.clock.unsynced,
            hold_max=cfg.clock.hold_max,
            device_tags={name: d.tags for name, d in cfg.devices.items()},
        )
        # Room for two full batches in flight, so the broker never waits on a flush.
        receive_maximum = 2 * cfg.influx.batch_size + 100
        self.ingest = ingest = MqttIngest(
            cfg.mqtt,
            [(i.template.filter, i.qos) for i in inputs],
            pipeline.on_message,
            self.metrics,
            receive_maximum=receive_maximum,
            on_state=lambda up: loop.call_soon_threadsafe(deaf.hearing if up else deaf.deaf),
        )
        late["ingest"] = ingest
        self.link = link = MqttLink(cfg.mqtt, loop)
        self.devices = devices = DevicesRuntime(self.loaded, self.metrics)
        pipeline.add_observer(devices.observe)
        link.subscribe(devices.availability_filters(), devices.on_message)

        encoder = LineEncoder()

        def write_point(measurement: str, tags: Any, fields: Any, ts: int) -> None:
            with contextlib.suppress(Unwritable):
                writer.add(
                    encoder.encode_point(measurement, tags, fields, ts), None, "outpost/events"
                )

        self.silences = silences = Silences(journal.db)
        notifications = Notifications(
            cfg.notify, silences=silences, journal=journal, metrics=self.metrics
        )
        bus = AlertBus(
            publish=link.publish,
            journal=journal,
            write_line=lambda line: writer.add(line, None, "outpost/events"),
            notify=notifications.submit,
            metrics=self.metrics,
            deaf=deaf,
        )

        def influx_auth(failing: bool, status: int | None) -> None:
            at = journal.now()
            stamp = rfc3339(at)
            bus.emit(
                {
                    "rule": "influx_unauthorized",
                    "device": "influxdb",
                    "state": "firing" if failing else "resolved",
                    "at": stamp,
                    "severity": "critical",
                    "value": status,
                    "message": (
                        f"InfluxDB refuses the gateway's credentials (HTTP {status}); "
                        "readings are kept in the outbox"
                        if failing
                        else "InfluxDB accepts the gateway's credentials again"
                    ),
                    "labels": {},
                    "active_at": stamp if failing else None,
                    "fired_at": stamp if failing else None,
                    "resolved_at": None if failing else stamp,
                    "trace_id": None,
                },
                at,
            )

        writer.on_auth = influx_auth
        self.dispatcher = dispatcher = CommandDispatcher(
            cfg.devices,
            link=link,
            journal=journal,
            metrics=self.metrics,
            on_alert=lambda event: bus.emit(event, journal.now()),
            on_point=write_point,
            source_id=cfg.mqtt.client_id,
        )
        self.rules = rules = RulesRuntime(
            cfg.rules, journal=journal, bus=bus, dispatcher=dispatcher, metrics=self.metrics
        )
        if rules.rule_count:
            pipeline.add_observer(rules.observe)
        self.http = http = HttpServer(self, cfg.http)

        log.info("writing to %s", sink.describe())
        background_stop = asyncio.Event()
        tasks = {
            asyncio.create_task(writer.run(), name="influx-writer"),
            asyncio.create_task(rules.run(background_stop), name="rules"),
            asyncio.create_task(notifications.run(background_stop), name="notifications"),
            asyncio.create_task(writer.backfill(background_stop), name="backfill"),
            asyncio.create_task(devices.run(background_stop), name="devices"),
            asyncio.create_task(self._outbox_gauges(background_stop), name="outbox-gauges"),
        }
        await http.start()
        # Everything built so far lives as long as the gateway: keep the garbage
        # collector from walking it again and again under load.
        gc.freeze()
        # Two threads share the GIL: paho's network thread (reading MQTT) and the event
        # loop (rules, writes). With the default 5 ms switch interval the network thread,
        # back from each socket read, waits up to 5 ms for the loop to let go; 1 ms keeps
        # it reading while the rules work.
        sys.setswitchinterval(0.001)
        link.start()
        ingest.start()
        dispatcher.start()
        self.ready.set()
        stop_task = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait(tasks | {stop_task}, return_when=asyncio.FIRST_COMPLETED)
        if stop_task not in done:  # a task died: report it rather than hide it
            stop_task.cancel()
            ingest.stop()
            link.stop()
            rules.checkpoint()
            journal.close()
            for task in done:
                task.result()
            return
        log.info(
            "stopping: flushing %d queued messages and %d buffered readings",
            pipeline.pending,
            writer.buffered,
        )
        ingest.stop_receiving()
        while pipeline.pending:
            pipeline.drain()
            await asyncio.sleep(0)
        background_stop.set()
        await http.stop()
        await asyncio.gather(*(t for t in tasks if t.get_name() != "influx-writer"))
        rules.checkpoint()
        await writer.stop(timeout=10.0)
        await asyncio.gather(*(t for t in tasks if t.get_name() == "influx-writer"))
        await loop.run_in_executor(None, ingest.stop)
        await loop.run_in_executor(None, link.stop)
        if outbox is not None:
            await loop.run_in_executor(None, outbox.close)
        journal.close()
        log.info("stopped")

    async def _outbox_gauges(self, stop: asyncio.Event) -> None:
        """Once a second: outbox gauges, and messages held for an unset clock."""
        m = self.metrics
        # The outbox's own drop counters, as outpost_dropped_total{reason="outbox_…"}.
        counted = {"outbox_full": 0, "outbox_age": 0, "outbox_damaged": 0, "outbox_fallback": 0}
        salvage = self.outbox.recovery if self.outbox is not None else None
        if salvage is not None:  # rows a damaged file lost at open (an estimate: recovery.py)
            m.dropped.labels("outbox_damaged").inc(salvage.lost_estimate + salvage.bad_rows)
        while not stop.is_set():
            if self.pipeline is not None:
                self.pipeline.release_held()
            if self.outbox is not None:
                stats = self.outbox.stats()
                m.outbox_lines.set(stats.lines)
                m.outbox_bytes.set(stats.bytes)
                m.outbox_oldest.set(stats.oldest_age)
                m.outbox_degraded.set(1 if stats.degraded else 0)
                totals = {
                    "outbox_full": stats.dropped_full,
                    "outbox_age": stats.dropped_age,
                    "outbox_damaged": stats.dropped_damaged,
                    "outbox_fallback": stats.dropped_fallback,
                }
                for reason, total in totals.items():
                    if total > counted[reason]:
                        m.dropped.labels(reason).inc(total - counted[reason])
                        counted[reason] = total
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)

    def reload_rules(self) -> None:
        """SIGHUP: re-read the rule files now."""
        if self.rules is not None:
            self.rules.reload()
