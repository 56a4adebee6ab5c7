"""Run the real ``outpost`` command as a subprocess, and talk MQTT to it like a device."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from benchmarks import yamlout
from tests.services import free_port

REPO = Path(__file__).resolve().parents[2]


def write_config(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(yamlout.dump(config), encoding="utf-8")  # Outpost refuses YAML aliases
    return path


class GatewayProcess:
    """``python -m gateway run -c FILE`` with its log captured to a file."""

    def __init__(
        self,
        config_path: Path,
        *,
        extra_args: Iterable[str] = (),
        env: dict[str, str] | None = None,
        wrapper: Iterable[str] = (),
    ) -> None:
        self.config_path = config_path
        self.log_path = config_path.with_suffix(".log")
        self.extra_args = list(extra_args)
        self.wrapper = list(wrapper)  # a command that execs the gateway, e.g. prlimit … --
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, wait_for: str | None = "connected to", timeout: float = 15.0) -> GatewayProcess:
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [*self.wrapper, sys.executable, "-m", "gateway", "run", "-c", str(self.config_path),
             *self.extra_args],
            cwd=self.config_path.parent,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=self.env,
        )
        if wait_for:
            self.wait_log(wait_for, timeout)
        return self

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_log(self, text: str, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log():
                return
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"gateway exited {self.proc.returncode}:\n{self.log()}")
            time.sleep(0.05)
        raise AssertionError(f"{text!r} not in the gateway log after {timeout}s:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"gateway did not stop in {timeout}s:\n{self.log()}") from None
        self._log.close()
        return self.proc.returncode

    def __enter__(self) -> GatewayProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.stop()


class Device:
    """A paho client playing a sensor (publisher) and a watcher (subscriber)."""

    def __init__(self, port: int, subscribe: Iterable[str] = ()) -> None:
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-{uuid.uuid4().hex[:8]}"
        )
        self.client.on_message = lambda c, u, m: self.messages.put(m)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        for topic in subscribe:
            self.client.subscribe(topic, qos=1)
        time.sleep(0.2)  # let the SUBACKs arrive before anything is published

    def publish(self, topic: str, payload: str | bytes, qos: int = 1) -> None:
        self.client.publish(topic, payload, qos=qos).wait_for_publish(5)

    def collect(self, count: int, timeout: float = 10.0) -> list[mqtt.MQTTMessage]:
        out: list[mqtt.MQTTMessage] = []
        deadline = time.monotonic() + timeout
        while len(out) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                out.append(self.messages.get(timeout=remaining))
            except queue.Empty:
                break
        return out

    def json_messages(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        return [json.loads(m.payload) for m in self.collect(count, timeout)]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> Device:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def gateway_config(mqtt_port: int, influx_url: str, database: str, **extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "mqtt": {
            "host": "127.0.0.1",
            "port": mqtt_port,
            "client_id": f"outpost-test-{uuid.uuid4().hex[:8]}",
        },
        "influx": {"url": influx_url, "database": database, "flush_interval": "200ms"},
        "http": {"listen": f"127.0.0.1:{free_port()}"},
        "state_dir": "./var",
    }
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    return config
