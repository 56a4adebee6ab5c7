"""One real gateway for the HTTP tests: real broker, real influxd, a rule and a fan.

Package-scoped so the API, metrics and browser tests share one start (the suite must
stay under a minute); each test uses its own device ids, so they do not see each
other's readings or alerts.
"""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from tests.gateway.harness import GatewayProcess, gateway_config, write_config
from tests.services import InfluxDB, Mosquitto, http_request

RULES = """\
rules:
  - name: too_hot
    match: {metric: temperature}
    when: value > 30
    clear: value < 28
    severity: critical
    message: "{device} is {value:.1f} °C"
    actions:
      - command: {device: fan-1, set: {speed: 100}}
    on_resolved:
      - command: {device: fan-1, set: {speed: 0}}
"""
TOKEN = "http-test-token"


class FakeFan:
    """fan-1 on MQTT: acknowledges every command it gets."""

    def __init__(self, port: int) -> None:
        self.commands: list[dict[str, Any]] = []
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"fan-{uuid.uuid4().hex[:6]}")
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe("devices/fan-1/set", qos=1)
        self.client.loop_start()

    def _on_message(self, client: mqtt.Client, userdata: object, message: Any) -> None:
        body = json.loads(message.payload)
        self.commands.append(body)
        client.publish("devices/fan-1/ack", json.dumps({"id": body["id"], "ok": True}), qos=1)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@dataclass
class LiveGateway:
    process: GatewayProcess
    url: str
    broker: Mosquitto
    config: dict[str, Any]
    publisher: mqtt.Client
    rules_path: Path

    def get(self, path: str, token: str | None = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        status, _, body = http_request("GET", self.url + path, headers=headers)
        try:
            return status, json.loads(body)
        except ValueError:
            return status, body.decode()

    def post(self, path: str, body: dict[str, Any], token: str | None = TOKEN) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        status, _, answer = http_request("POST", self.url + path, json.dumps(body).encode(),
                                         headers)
        return status, json.loads(answer)

    def publish(self, device: str, metric: str, value: float | str) -> None:
        self.publisher.publish(f"sensors/{device}/{metric}", str(value), qos=1).wait_for_publish(5)

    def wait_for(self, path: str, check: Any, timeout: float = 10.0) -> Any:
        """GET ``path`` until ``check(json)`` is truthy; returns that value."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            status, last = self.get(path)
            if status == 200:
                result = check(last)
                if result:
                    return result
            time.sleep(0.05)
        raise AssertionError(f"{path}: condition not met in {timeout}s; last answer: {last}")


def start_gateway(tmp: Path, broker: Mosquitto, influx: InfluxDB, db: str,
                  **http: Any) -> tuple[GatewayProcess, dict[str, Any]]:
    (tmp / "rules.yaml").write_text(RULES, encoding="utf-8")
    (tmp / "api.token").write_text(TOKEN + "\n", encoding="utf-8")
    config = gateway_config(
        broker.port, influx.url, db, rules=[str(tmp / "rules.yaml")],
        devices={"fan-1": {"convention": "outpost",
                           "commands": {"speed": {"type": "int", "min": 0, "max": 100}}}},
        http={"token_file": "api.token", **http})
    path = write_config(tmp / "outpost.yaml", config)
    process = GatewayProcess(path).start(wait_for="connected to")
    process.wait_log("HTTP API on")
    return process, config


@pytest.fixture(scope="package")
def live_gateway(shared_mosquitto: Mosquitto, influxdb: InfluxDB,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveGateway]:
    tmp = tmp_path_factory.mktemp("http-gw")
    db = f"http_{uuid.uuid4().hex[:10]}"
    influxdb.create_database(db)
    process, config = start_gateway(tmp, shared_mosquitto, influxdb, db)
    fan = FakeFan(shared_mosquitto.port)
    publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                            client_id=f"pub-{uuid.uuid4().hex[:6]}")
    publisher.connect("127.0.0.1", shared_mosquitto.port)
    publisher.loop_start()
    gw = LiveGateway(process, f"http://{config['http']['listen']}", shared_mosquitto, config,
                     publisher, tmp / "rules.yaml")
    try:
        yield gw
    finally:
        publisher.loop_stop()
        publisher.disconnect()
        fan.close()
        assert process.stop() == 0, process.log()
        if influxdb.is_running():
            influxdb.drop_database(db)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def read_stream(url: str, events: int, timeout: float = 5.0,
                headers: dict[str, str] | None = None) -> list[tuple[str, Any]]:
    """The first ``events`` server-sent events of ``url`` as (name, data)."""
    request = urllib.request.Request(url, headers=headers or {})
    out: list[tuple[str, Any]] = []
    with urllib.request.urlopen(request, timeout=timeout) as resp:
        name, data = "message", ""
        for raw in resp:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data += line[6:]
            elif not line and data:
                out.append((name, json.loads(data)))
                name, data = "message", ""
                if len(out) >= events:
                    break
    return out
