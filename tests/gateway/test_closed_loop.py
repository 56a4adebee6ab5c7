"""The greenhouse loop end to end: simulator, broker, gateway, rules, fan, InfluxDB.

temperature crosses the threshold → alert firing → fan command → fan ack →
temperature falls → alert resolved → fan off, all visible in ``outpost events``.
The example rule, with ``for`` shortened from 1m to 5s so the test takes seconds.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.gateway.harness import REPO, GatewayProcess, gateway_config, write_config


def test_greenhouse_loop_closes_and_is_traced(tmp_path, mosquitto, influxdb, influx_db):
    rules = (REPO / "examples/greenhouse/rules.yaml").read_text()
    rules = rules.replace(
        "    for: 1m                  # held", "    for: 5s                  # held"
    )
    assert "for: 5s" in rules
    (tmp_path / "rules.yaml").write_text(rules)
    config = gateway_config(
        mosquitto.port,
        influxdb.url,
        influx_db,
        rules=["rules.yaml"],
        devices={"fan-1": {"commands": {"speed": {"type": "int", "min": 0, "max": 100}}}},
    )
    path = write_config(tmp_path / "outpost.yaml", config)
    with GatewayProcess(path):
        sim = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "simulators",
                "--scenario",
                "greenhouse",
                "--speed",
                "30",
                "--rate",
                "2",
                "--seed",
                "1",
                "--host",
                "127.0.0.1",
                "--port",
                str(mosquitto.port),
            ],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            events = _wait_for_fan_off(path, timeout=60)
        finally:
            sim.send_signal(signal.SIGTERM)
            sim.communicate(timeout=15)
    hot = [e for e in events if e["rule"] == "greenhouse_hot"]
    sequence = [
        (e["kind"], e["event"].get("state") or e["event"].get("set"))
        for e in hot
        if e["kind"] in ("alert", "command", "command_acked")
    ]
    assert sequence[:7] == [
        ("alert", "pending"),
        ("alert", "firing"),
        ("command", {"speed": 100}),
        ("command_acked", {"speed": 100}),
        ("alert", "resolved"),
        ("command", {"speed": 0}),
        ("command_acked", {"speed": 0}),
    ]
    # The trace of the firing alert leads to the fan command and its acknowledgement.
    firing = next(e for e in hot if e["event"].get("state") == "firing")
    traced = _events(path, "--trace", firing["trace_id"])
    assert [e["kind"] for e in traced][:4] == ["alert", "alert", "command", "command_acked"]
    # The temperature really fell while the fan ran.
    temps = sorted(influxdb.points(influx_db, "temperature"), key=lambda r: r["time"])
    fired_at, resolved_at = (
        _ns(e["at"])
        for e in hot
        if e["kind"] == "alert" and e["event"]["state"] in ("firing", "resolved")
    )
    during = [r["fields"]["value"] for r in temps if fired_at <= r["time"] <= resolved_at]
    assert max(during) > 30 and during[-1] < 28


def _ns(text: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(text).timestamp() * 1000) * 1_000_000


def _events(path: Path, *args: str) -> list[dict]:
    out = subprocess.run(
        [sys.executable, "-m", "gateway", "events", "--json", "-c", str(path), *args],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [json.loads(line) for line in out.splitlines()]


def _wait_for_fan_off(path: Path, timeout: float) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = _events(path)
        acked = [e for e in events if e["kind"] == "command_acked"]
        if any(e["event"].get("set") == {"speed": 0} for e in acked):
            return events
        time.sleep(1.0)
    raise AssertionError(f"the loop did not close in {timeout}s: {_events(path)}")
