"""A gateway with one rule that fires at once, for the attacks on its files.

``hot`` fires (no ``for:``) when a ``gh-*`` device reports a temperature over
30: publishing ``sensors/gh-1/temperature 31`` and seeing its alert on MQTT is
the proof that the rules loaded at start are still the running ones.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.gateway.harness import Device, gateway_config, write_config

HOT_RULE = """\
rules:
  - name: hot
    match: {metric: temperature, device: "gh-*"}
    when: value > 30
    clear: value < 28
"""


def rules_gateway_config(tmp_path: Path, mosquitto: Any, influxdb: Any, influx_db: str,
                         **extra: Any) -> Path:
    """``outpost.yaml`` in ``tmp_path`` with ``rules.d/*.yaml`` holding :data:`HOT_RULE`."""
    (tmp_path / "rules.d").mkdir()
    (tmp_path / "rules.d" / "greenhouse.yaml").write_text(HOT_RULE)
    config = gateway_config(mosquitto.port, influxdb.url, influx_db, rules=["rules.d/*.yaml"],
                            **extra)
    return write_config(tmp_path / "outpost.yaml", config)


def api_base(config: Path) -> str:
    """``http://host:port`` of the gateway's HTTP API."""
    return f"http://{yaml.safe_load(config.read_text())['http']['listen']}"


def hot_fires(device: Device, name: str, value: str = "31", timeout: float = 10.0) -> bool:
    """Publish a hot reading for ``name``; True when its ``hot`` alert fires in time."""
    device.publish(f"sensors/{name}/temperature", value)
    for message in device.collect(1, timeout=timeout):
        event = json.loads(message.payload)
        return bool(event["rule"] == "hot" and event["device"] == name
                    and event["state"] == "firing")
    return False


def replace_file(path: Path, text: str) -> None:
    """Replace ``path`` at once (as editors and deploy tools do): no reload sees half of it."""
    part = path.with_name(f".{path.name}.part")
    part.write_text(text)
    os.replace(part, path)


def journal(config: Path) -> list[dict[str, Any]]:
    """Every journal entry, read by ``outpost events --json`` as an operator would."""
    run = subprocess.run([sys.executable, "-m", "gateway", "events", "-c", str(config), "--json"],
                         capture_output=True, text=True, timeout=30, check=True)
    return [json.loads(line) for line in run.stdout.splitlines()]


def reloads(config: Path) -> list[dict[str, Any]]:
    """The ``rules_reload`` events of the journal, oldest first."""
    return [e["event"] for e in journal(config) if e["kind"] == "rules_reload"]


def peak_rss_kib(pid: int) -> int:
    """The process's peak resident memory (VmHWM), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmHWM for pid {pid}")
