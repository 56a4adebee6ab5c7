"""``outpost record``: readings from the broker to JSON lines, for ``rules replay``.

Each line is ``{"ts": <ns>, "device": …, "metric": …, "value": …, "tags": {…}}``
(DESIGN.md §3). Messages are decoded exactly as the gateway decodes them, with
the config's inputs (or only those matching ``--topic``); undecodable ones are
counted and skipped. Recording uses aiomqtt: it needs no manual
acknowledgement, and it is a client like any other.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
import uuid
from pathlib import Path
from typing import Any, TextIO

import aiomqtt

from devices import catalog as registry
from devices.decoding import DecodeError, Message
from gateway.cli.common import load_config_or_report
from gateway.cli.progress import Progress
from gateway.config import LoadedConfig
from gateway.config.units import parse_duration
from gateway.topics import TopicRouter, TopicTemplate


def reading_line(reading: Any) -> str:
    record = {
        "ts": reading.ts,
        "device": reading.device,
        "metric": reading.metric,
        "value": reading.value,
        "tags": dict(reading.tags),
    }
    return json.dumps(record, ensure_ascii=False)


async def record(
    loaded: LoadedConfig,
    out: TextIO,
    *,
    topic_filter: str | None,
    duration: float | None,
    stop: asyncio.Event,
    progress: Progress | None = None,
) -> tuple[int, int]:
    """Record until ``duration`` elapsed or ``stop`` is set; returns (readings, skipped)."""
    cfg = loaded.config
    routes = []
    for spec in cfg.inputs:
        template = TopicTemplate(spec.topic)
        routes.append((template, registry.get(spec.format)(spec.model_dump())))
    router = TopicRouter(routes)
    subscriptions = [topic_filter] if topic_filter else sorted({t.filter for t, _ in routes})
    written = skipped = 0
    mqtt = cfg.mqtt
    client = aiomqtt.Client(
        mqtt.host,
        mqtt.port,
        identifier=f"outpost-record-{uuid.uuid4().hex[:8]}",
        username=mqtt.username,
        password=mqtt.password.get_secret_value() if mqtt.password else None,
        tls_params=aiomqtt.TLSParameters(
            ca_certs=mqtt.tls.ca, certfile=mqtt.tls.cert, keyfile=mqtt.tls.key
        )
        if mqtt.tls
        else None,
    )
    deadline = None if duration is None else time.monotonic() + duration
    async with client:
        for sub in subscriptions:
            await client.subscribe(sub, qos=1)
        messages = client.messages.__aiter__()
        while not stop.is_set():
            timeout = None if deadline is None else deadline - time.monotonic()
            if timeout is not None and timeout <= 0:
                break
            stop_wait = asyncio.ensure_future(stop.wait())
            next_message = asyncio.ensure_future(messages.__anext__())
            done, _ = await asyncio.wait(
                {stop_wait, next_message}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            stop_wait.cancel()
            if next_message not in done:
                next_message.cancel()
                break
            message = next_message.result()
            if progress is not None:
                progress.update(written, f" ({skipped} messages skipped)")
            route = router.route(str(message.topic))
            if route is None:
                skipped += 1
                continue
            decoder, fields = route
            payload = (
                message.payload
                if isinstance(message.payload, bytes)
                else str(message.payload).encode()
            )
            try:
                readings = decoder.decode(
                    Message(str(message.topic), payload, fields, time.time_ns())
                )
            except DecodeError:
                skipped += 1
                continue
            for reading in readings:
                out.write(reading_line(reading) + "\n")
                written += 1
            out.flush()
    return written, skipped


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "record", parents=[common], help="record readings from the broker to JSON lines"
    )
    parser.add_argument(
        "--output",
        "-o",
        required=True,
        metavar="FILE.jsonl",
        help="file to write ('-' for standard output)",
    )
    parser.add_argument(
        "--topic",
        metavar="FILTER",
        help="only this MQTT topic filter (default: every input of the config)",
    )
    parser.add_argument("--duration", metavar="D", help="stop after this long (e.g. 10m)")
    parser.set_defaults(func=_cmd_record)


def _cmd_record(args: argparse.Namespace) -> int:
    loaded = load_config_or_report(args)
    if loaded is None:
        return 2
    try:
        duration = parse_duration(args.duration) if args.duration else None
    except ValueError as exc:
        print(f"--duration: {exc}", file=sys.stderr)
        return 2

    progress = Progress("recording", "recorded", "readings", sys.stderr, live=sys.stderr.isatty())

    async def main(out: TextIO) -> tuple[int, int]:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        return await record(
            loaded, out, topic_filter=args.topic, duration=duration, stop=stop, progress=progress
        )

    try:
        if args.output == "-":
            written, skipped = asyncio.run(main(sys.stdout))
        else:
            with Path(args.output).open("a", encoding="utf-8") as out:
                written, skipped = asyncio.run(main(out))
    except OSError as exc:
        progress.clear()
        print(f"outpost record: {exc.filename or args.output}: {exc.strerror}", file=sys.stderr)
        return 2
    except aiomqtt.MqttError as exc:
        progress.clear()
        cfg = loaded.config.mqtt
        print(f"outpost record: broker {cfg.host}:{cfg.port}: {exc}", file=sys.stderr)
        return 2
    progress.finish(written, f" ({skipped} messages skipped)")
    return 0
