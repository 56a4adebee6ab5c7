"""The running gateway: wires config to ingest, pipeline and writer, and shuts down cleanly.

Shutdown order matters for "nothing acknowledged is lost": stop taking new
messages (unacknowledged QoS 1 ones will be redelivered next session), process
what is queued, flush every batch to InfluxDB (acknowledging as they land),
then say ``offline`` and disconnect.
"""

from __future__ import annotations

import asyncio
import logging

from gateway.alerting import RulesRuntime, load_rule_files
from gateway.commands import CommandPolicy
from gateway.config import LoadedConfig
from gateway.deadletter import DeadLetters
from gateway.decoders import registry
from gateway.influx import make_sink
from gateway.influx.writer import InfluxWriter
from gateway.journal import Journal
from gateway.metrics import Metrics
from gateway.mqtt.ingest import MqttIngest
from gateway.pipeline import Input, Pipeline
from gateway.topics import TopicTemplate

log = logging.getLogger("outpost")


class Gateway:
    def __init__(self, loaded: LoadedConfig) -> None:
        self.loaded = loaded
        self.config = loaded.config
        self.metrics = Metrics()
        self.ingest: MqttIngest | None = None
        self.writer: InfluxWriter | None = None
        self.pipeline: Pipeline | None = None
        self.rules: RulesRuntime | None = None
        self.ready = asyncio.Event()
        # Validate the rule files now: bad rules fail the start, before any connection.
        load_rule_files(self.config.rules)

    def _inputs(self) -> list[Input]:
        inputs = []
        for spec in self.config.inputs:
            factory = registry.get(spec.format)
            inputs.append(
                Input(
                    name=spec.topic,
                    template=TopicTemplate(spec.topic),
                    decoder=factory(spec.model_dump()),
                    qos=spec.qos,
                    max_payload=spec.max_payload,
                )
            )
        return inputs

    async def run(self, stop: asyncio.Event) -> None:
        cfg = self.config
        loop = asyncio.get_running_loop()
        inputs = self._inputs()
        publish_late: list[MqttIngest] = []

        def publish(topic: str, payload: bytes) -> None:
            publish_late[0].publish(topic, payload, qos=0)

        deadletters = DeadLetters(publish, self.metrics)
        sink = make_sink(cfg.influx)
        ingest_ack: list[MqttIngest] = []
        self.writer = writer = InfluxWriter(
            sink,
            batch_size=cfg.influx.batch_size,
            flush_interval=cfg.influx.flush_interval,
            max_buffer=cfg.influx.max_buffer,
            deadletters=deadletters,
            metrics=self.metrics,
            on_acked=lambda tokens: ingest_ack[0].ack(tokens),  # type: ignore[arg-type]
        )
        self.pipeline = pipeline = Pipeline(
            inputs,
            writer=writer,
            deadletters=deadletters,
            metrics=self.metrics,
            loop=loop,
            max_batch=cfg.influx.batch_size,
        )
        # Room for two full batches in flight, so the broker never waits on a flush.
        receive_maximum = 2 * cfg.influx.batch_size + 100
        self.ingest = ingest = MqttIngest(
            cfg.mqtt,
            [(i.template.filter, i.qos) for i in inputs],
            pipeline.on_message,
            self.metrics,
            receive_maximum=receive_maximum,
        )
        publish_late.append(ingest)
        ingest_ack.append(ingest)

        journal = Journal(cfg.state_dir)
        self.rules = rules = RulesRuntime(
            cfg.rules, journal=journal, publish=ingest.publish,
            write_line=lambda line: writer.add(line, None, "outpost/events"),
            policy=CommandPolicy(cfg.devices), metrics=self.metrics)
        if rules.rule_count:
            pipeline.add_observer(rules.observe)

        log.info("writing to %s", sink.describe())
        writer_task = asyncio.create_task(writer.run(), name="influx-writer")
        rules_stop = asyncio.Event()
        rules_task = asyncio.create_task(rules.run(rules_stop), name="rules")
        ingest.start()
        self.ready.set()
        stop_task = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({writer_task, rules_task, stop_task},
                                     return_when=asyncio.FIRST_COMPLETED)
        if stop_task not in done:  # a task died: report it rather than hide it
            stop_task.cancel()
            ingest.stop()
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
        rules_stop.set()
        await rules_task
        rules.checkpoint()
        journal.close()
        await writer.stop(timeout=10.0)
        await writer_task
        await loop.run_in_executor(None, ingest.stop)
        log.info("stopped")

    def reload_rules(self) -> None:
        """SIGHUP: re-read the rule files now."""
        if self.rules is not None:
            self.rules.reload()
