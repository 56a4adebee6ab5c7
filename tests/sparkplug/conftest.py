"""A gateway configured as a Sparkplug host, against the real Mosquitto and influxd."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.gateway.harness import GatewayProcess, gateway_config, write_config

HOST_ID = "outpost-test"
MOTOR = "plant1:press-7:motor"
NODE = "plant1:press-7"
TOKEN = "spb-test-token"

RULES = """\
rules:
  - name: motor_silent
    match: {metric: "Inputs/Temperature"}
    when: absent(2s)
    severity: critical
"""


class Gateway:
    """The gateway process with its config, and what the tests ask it."""

    def __init__(self, process: GatewayProcess, config: dict[str, Any]) -> None:
        self.process = process
        self.config = config
        self.base = f"http://{config['http']['listen']}"

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.base + path, timeout=5) as answer:
            body = answer.read()
        return json.loads(body) if path.startswith("/api") else body.decode()

    def device(self, device: str) -> dict[str, Any] | None:
        for entry in self.get("/api/v1/devices")["devices"]:
            if entry["device"] == device:
                return entry
        return None

    def metric(self, name: str) -> float:
        """A sample of /metrics by its full name with labels (0 when absent)."""
        for line in self.get("/metrics").splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
        return 0.0

    def command(self, device: str, settings: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(
            self.base + "/api/v1/commands",
            data=json.dumps({"device": device, "set": settings}).encode(),
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, json.loads(exc.read())


def until(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        time.sleep(0.05)


@pytest.fixture
def spb_gateway(tmp_path: Path, mosquitto, influxdb, influx_db) -> Iterator[Callable[..., Gateway]]:
    started: list[GatewayProcess] = []

    def start(rules: str = RULES, devices: dict[str, Any] | None = None, **extra: Any) -> Gateway:
        (tmp_path / "rules.yaml").write_text(rules, encoding="utf-8")
        (tmp_path / "api.token").write_text(TOKEN, encoding="utf-8")
        tmp_path.joinpath("api.token").chmod(0o600)
        devices = devices or {
            MOTOR: {
                "convention": "sparkplug",
                "commands": {
                    "Outputs/Speed": {"type": "int", "min": 0, "max": 100},
                    "Outputs/Enabled": {},
                },
                "ack_timeout": "2s",
                "retries": 0,
            }
        }
        config = gateway_config(
            mosquitto.port,
            influxdb.url,
            influx_db,
            inputs=[{"topic": "spBv1.0/#", "format": "sparkplug", "max_payload": "1MiB"}],
            sparkplug={"host_id": HOST_ID, "rebirth_timeout": "1s"},
            devices=devices,
            rules=["rules.yaml"],
            **extra,
        )
        config["http"]["token_file"] = "api.token"
        process = GatewayProcess(write_config(tmp_path / "outpost.yaml", config))
        started.append(process)
        process.start()
        gateway = Gateway(process, config)
        until(lambda: _ready(gateway), what="the gateway's API")
        return gateway

    yield start
    for process in started:
        if process.proc is not None and process.proc.poll() is None:
            process.stop()


def _ready(gateway: Gateway) -> bool:
    try:
        gateway.get("/api/v1/status")
    except OSError:
        return False
    return True
