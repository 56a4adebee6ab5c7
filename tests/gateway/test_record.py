"""``outpost record`` writes the readings it hears as JSON lines (the replay input)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from tests.gateway.harness import Device, write_config


def test_record_writes_decoded_readings_as_json_lines(tmp_path, mosquitto):
    config = write_config(
        tmp_path / "outpost.yaml", {"mqtt": {"host": "127.0.0.1", "port": mosquitto.port}}
    )
    out = tmp_path / "readings.jsonl"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway",
            "record",
            "-c",
            str(config),
            "--output",
            str(out),
            "--duration",
            "4s",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    # Wait for the recorder's connection (its subscription follows at once), not a guess
    # at how long Python takes to start on a busy machine.
    deadline = time.monotonic() + 20
    # (by its client id: the broker's log also holds the fixture's own probe connection)
    while "as outpost-record-" not in mosquitto.log_tail(200) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    with Device(mosquitto.port) as device:
        device.publish("sensors/gh-1/temperature", "21.5")
        device.publish("sensors/gh-2", json.dumps({"humidity": 40, "ts": 1795755841}))
        device.publish("sensors/gh-1/temperature", "nan")  # skipped, not recorded
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["device"], r["metric"], r["value"]) for r in lines] == [
        ("gh-1", "temperature", 21.5),
        ("gh-2", "humidity", 40.0),
    ]
    assert lines[1]["ts"] == 1795755841 * 10**9 and lines[1]["tags"] == {}
    assert "recorded 2 readings (1 messages skipped)" in err
