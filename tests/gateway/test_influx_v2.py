"""The InfluxDB 2.x write path (token, org, bucket) against VictoriaMetrics' /api/v2/write.

VictoriaMetrics keeps floats and millisecond timestamps only (DESIGN.md §8), so
this checks values, tags and milliseconds; field types are checked on influxd.
"""

from __future__ import annotations

import json
import time
import uuid

from tests.gateway.harness import Device, GatewayProcess, write_config
from tests.services import free_port


def wait_series(vm, match, count, timeout=15.0):
    deadline = time.monotonic() + timeout
    while True:
        series = vm.export(match)
        if sum(len(s["values"]) for s in series) >= count or time.monotonic() > deadline:
            return series
        time.sleep(0.2)


def test_readings_reach_the_v2_write_api_with_values_tags_and_milliseconds(
    tmp_path, mosquitto, victoria_metrics
):
    site = f"s{uuid.uuid4().hex[:8]}"
    (tmp_path / "influx.token").write_text("test-token\n")
    config = {
        "mqtt": {"host": "127.0.0.1", "port": mosquitto.port, "client_id": f"gw-{site}"},
        "influx": {
            "url": victoria_metrics.url,
            "org": "home",
            "bucket": "sensors",
            "token_file": "influx.token",
            "flush_interval": "200ms",
        },
        "inputs": [
            {
                "topic": "sensors/{device}",
                "format": "json",
                "time_field": "ts",
                "tags": {"site": site},
            }
        ],
        "http": {"listen": f"127.0.0.1:{free_port()}"},
    }
    with (
        GatewayProcess(write_config(tmp_path / "outpost.yaml", config)),
        Device(mosquitto.port) as device,
    ):
        for i in range(5):
            device.publish(
                "sensors/gh 1",
                json.dumps({"temperature": 20.5 + i, "ts": 1795755841123 + i * 1000}),
            )
        series = wait_series(victoria_metrics, f'{{site="{site}"}}', 5)
    [s] = series
    assert s["metric"] == {"__name__": "temperature_value", "device": "gh 1", "site": site}
    assert s["values"] == [20.5, 21.5, 22.5, 23.5, 24.5]
    assert s["timestamps"] == [1795755841123 + i * 1000 for i in range(5)]
