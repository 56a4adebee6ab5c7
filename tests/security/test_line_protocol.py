"""A device's own names cannot make the gateway store points under other names, or lose others.

Device ids come from topics and metric names from payload keys: any publisher picks
them. Names with a backslash before a space, ``,``, ``=`` or ``"`` are where line
protocol and the servers' parsers disagree. Through MQTT to the real gateway:

- influxd 1.6: a device named with all four is stored under exactly that name; the
  metrics InfluxDB cannot store (a backslash before a space or ``=``, text that is not
  Unicode) are dead-lettered with ``unstorable_name``, and the other readings of the
  same message — the same batch — are stored;
- VictoriaMetrics (``server: victoriametrics``): such metric names are stored exactly
  too; a text reading, which it cannot store, is dead-lettered with ``unstorable_value``.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from tests.gateway.harness import Device, GatewayProcess, gateway_config, write_config
from tests.services import InfluxDB, Mosquitto, VictoriaMetrics

EVIL_DEVICE = 'gh\\ 1\\,a\\=b\\"c'  # gh\ 1\,a\=b\"c
# JSON keys, as the device sends them: "\\ud800" is a lone surrogate once decoded
PAYLOAD = '{"temperature": 21.5, "hum\\"id": 40, "ts": 1795755841123}'
# A message is stored whole or not at all: each name the database cannot store refuses
# its own message (the reason names why), and the good message above is stored.
REFUSED = {
    '{"t\\\\ x": 1, "ts": 1795755841123}': "unstorable_name",
    '{"h\\\\=y": 2, "ts": 1795755841123}': "unstorable_name",
    '{"bad\\ud800": 3, "ts": 1795755841123}': "invalid_text",
}


def dead_letters(watcher: Device, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    letters: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while len(letters) < count and time.monotonic() < deadline:
        for message in watcher.collect(1, timeout=0.2):
            if message.topic == "outpost/deadletter":
                letters.append(json.loads(message.payload))
    return letters


def test_influxd_stores_the_device_name_exactly_and_refuses_what_it_cannot_store(
    tmp_path, mosquitto: Mosquitto, influxdb: InfluxDB, influx_db_name: str
) -> None:
    config = gateway_config(
        mosquitto.port,
        influxdb.url,
        influx_db_name,
        inputs=[{"topic": "sensors/{device}", "format": "json", "time_field": "ts"}],
    )
    with (
        GatewayProcess(write_config(tmp_path / "outpost.yaml", config)),
        Device(mosquitto.port, subscribe=["outpost/deadletter"]) as device,
    ):
        for refused in REFUSED:
            device.publish(f"sensors/{EVIL_DEVICE}", refused)
        device.publish(f"sensors/{EVIL_DEVICE}", PAYLOAD)
        letters = dead_letters(device, 3)
        rows = influxdb.wait_for_count(influx_db_name, 2)
        time.sleep(0.5)  # nothing else arrives
        rows = influxdb.points(influx_db_name)
    assert sorted((row["measurement"], row["tags"]["device"]) for row in rows) == [
        ('hum"id', EVIL_DEVICE),
        ("temperature", EVIL_DEVICE),
    ]
    assert {row["time"] for row in rows} == {1_795_755_841_123_000_000}
    answer = influxdb.query('SHOW TAG VALUES WITH KEY = "device"', influx_db_name)
    assert {v for s in answer["results"][0]["series"] for _, v in s["values"]} == {EVIL_DEVICE}
    assert sorted(influxdb.measurements(influx_db_name)) == ['hum"id', "temperature"]
    assert {letter["payload"]: letter["reason"] for letter in letters} == REFUSED
    assert all(letter["topic"] == f"sensors/{EVIL_DEVICE}" for letter in letters)


def test_victoria_metrics_stores_backslashed_names_exactly(
    tmp_path, mosquitto: Mosquitto, victoria_metrics: VictoriaMetrics
) -> None:
    site = f"s{uuid.uuid4().hex[:8]}"
    (tmp_path / "influx.token").write_text("test-token\n")
    config = gateway_config(
        mosquitto.port,
        victoria_metrics.url,
        "unused",
        inputs=[
            {
                "topic": "sensors/{device}",
                "format": "json",
                "time_field": "ts",
                "tags": {"site": site},
            },
            {"topic": "state/{device}/{metric}", "format": "value", "tags": {"site": site}},
        ],
    )
    config["influx"] = {
        "url": victoria_metrics.url,
        "server": "victoriametrics",
        "org": "home",
        "bucket": "sensors",
        "token_file": "influx.token",
        "flush_interval": "200ms",
    }
    payload = '{"t\\\\ x": 1, "h\\\\=y": 2, "c\\\\,z": 3, "q\\\\\\"w": 4, "ts": 1795755841123}'
    surrogate = '{"bad\\ud800": 5, "ts": 1795755841123}'  # refused whole, at decode
    with (
        GatewayProcess(write_config(tmp_path / "outpost.yaml", config)),
        Device(mosquitto.port, subscribe=["outpost/deadletter"]) as device,
    ):
        device.publish(f"sensors/{EVIL_DEVICE}", payload)
        device.publish(f"sensors/{EVIL_DEVICE}", surrogate)
        device.publish(f"state/{EVIL_DEVICE}/mode", '"auto"')
        letters = dead_letters(device, 2)
        deadline = time.monotonic() + 10
        while True:
            series = victoria_metrics.export(f'{{site="{site}"}}')
            if len(series) >= 4 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        time.sleep(0.5)
        series = victoria_metrics.export(f'{{site="{site}"}}')
    assert sorted(
        (s["metric"]["__name__"], s["metric"]["device"], s["values"]) for s in series
    ) == [
        ("c\\,z_value", EVIL_DEVICE, [3]),
        ("h\\=y_value", EVIL_DEVICE, [2]),
        ('q\\"w_value', EVIL_DEVICE, [4]),
        ("t\\ x_value", EVIL_DEVICE, [1]),
    ]
    assert sorted((letter["reason"], letter["topic"]) for letter in letters) == [
        ("invalid_text", f"sensors/{EVIL_DEVICE}"),
        ("unstorable_value", f"state/{EVIL_DEVICE}/mode"),
    ]
