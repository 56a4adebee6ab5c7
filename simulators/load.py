"""Load mode: publish exactly ``count`` messages, flat out or at a target rate.

For benchmarks (``benchmarks/``), usable without the CLI::

    stats = await publish_load("127.0.0.1", 1883, count=100_000, qos=0)
    print(stats.messages, stats.elapsed, stats.rate)

One connection, no status topics and no will: this is a publisher, not a
fleet of devices (use ``outpost simulate`` for that). Payloads are real
samples of the ``sensors`` scenario's models, so the gateway decodes them as it
would in production. ``count`` counts MQTT messages: in ``value`` style each
carries one reading; in ``json`` style each carries one reading per metric
(``LoadStats.readings`` says how many in total). JSON ``ts`` is in nanoseconds
and strictly increasing per device, so no two points written to InfluxDB
collide, however fast the run.

aiomqtt owns the connection, but the hot path hands each batch of ``window``
messages to its underlying paho client and awaits only the batch's last message
through aiomqtt: one awaited ``publish`` per message costs a future, a timeout
and event-loop round trips, which capped this generator at ~20k msg/s on the
2-core test machine, below what a bare paho subscriber takes (DESIGN.md §10),
so a benchmark's "raw ceiling" would have measured the publisher. With QoS 1
the batch waits for its PUBACKs, so ``window`` also bounds messages in flight.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

import aiomqtt
from paho.mqtt.client import MQTT_ERR_SUCCESS

from simulators.link import NO_DELAY
from simulators.model import Model
from simulators.payloads import Style, encode_sample
from simulators.scenario import load_scenario


@dataclass(frozen=True)
class LoadStats:
    messages: int  # MQTT messages published (== count)
    readings: int  # metric values those messages carry
    elapsed: float  # seconds from the first publish to the last one done (QoS 1: acked)

    @property
    def rate(self) -> float:
        """Messages per second."""
        return self.messages / self.elapsed if self.elapsed > 0 else math.inf


def load_messages(
    models: list[Model], style: Style, ts_unit: str = "ns"
) -> Iterator[tuple[str, bytes, int]]:
    """Endless ``(topic, payload, readings carried)``, devices round robin."""
    n = len(models)
    last_ts = [0] * n
    j = 0
    while True:
        i = j % n
        model = models[i]
        values = model.next(j / n)  # as if each device sampled at 1 Hz
        ts = max(time.time_ns(), last_ts[i] + 1)
        last_ts[i] = ts
        for topic, payload in encode_sample(model.device, values, style, ts, ts_unit):
            yield topic, payload, 1 if topic.count("/") == 2 else len(values)
        j += 1


async def publish_load(
    host: str,
    port: int = 1883,
    count: int = 10_000,
    rate: float | None = None,
    qos: int = 0,
    devices: int = 10,
    style: Style | str = Style.VALUE,
    *,
    seed: int | str = 0,
    prefix: str = "load-",
    scenario: str = "sensors",
    username: str | None = None,
    password: str | None = None,
    window: int = 100,
    no_delay: bool | None = None,
) -> LoadStats:
    """Publish ``count`` messages to ``host:port`` and say how long it took.

    ``rate`` (messages per second) paces them on an absolute schedule; ``None``
    publishes as fast as the connection takes them. ``no_delay`` turns Nagle's
    algorithm off (default: off when paced, where latency is measured; left on
    flat out, where it batches packets: ~10 % more messages/s here). Raises
    ``aiomqtt.MqttError`` if the broker cannot be reached or the connection drops.
    """
    if count < 0 or window < 1 or (rate is not None and rate <= 0):
        raise ValueError("count >= 0, window >= 1 and rate > 0 required")
    style = Style(style)
    models = load_scenario(scenario).build_models(seed, devices, prefix)
    source = load_messages(models, style)
    sent = readings = 0
    async with aiomqtt.Client(
        host,
        port,
        username=username,
        password=password,
        identifier=f"outpost-load-{os.getpid()}",
        max_inflight_messages=window,
        socket_options=NO_DELAY if (rate is not None if no_delay is None else no_delay) else (),
    ) as client:
        paho = client._client  # private, on purpose: the hot path (module docstring)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        while sent < count:
            due = count if rate is None else min(count, math.floor((loop.time() - t0) * rate) + 1)
            if due <= sent:
                await asyncio.sleep(t0 + sent / rate - loop.time())  # type: ignore[operator]
                continue
            batch = min(due - sent, window)
            for _ in range(batch - 1):
                topic, payload, carried = next(source)
                info = paho.publish(topic, payload, qos)
                if info.rc != MQTT_ERR_SUCCESS:
                    raise aiomqtt.MqttCodeError(info.rc, "Could not publish message")
                readings += carried
            # Packets leave in order, so once the last one is written (QoS 0) or
            # acknowledged (QoS 1, Mosquitto acks in order) the batch is done.
            topic, payload, carried = next(source)
            await client.publish(topic, payload, qos=qos)
            readings += carried
            sent += batch
        elapsed = loop.time() - t0
    return LoadStats(messages=sent, readings=readings, elapsed=elapsed)
