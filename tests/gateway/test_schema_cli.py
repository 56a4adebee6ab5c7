"""``outpost schema`` writes the JSON Schemas of the config, the rule files and every event."""

from __future__ import annotations

import json
import subprocess
import sys

from rules import AlertEvent, AlertState


def test_schema_command_writes_every_schema(tmp_path):
    out = subprocess.run([sys.executable, "-m", "gateway", "schema", "--out", str(tmp_path)],
                         capture_output=True, text=True, check=True).stdout.split()
    names = sorted(p.rsplit("/", 1)[-1] for p in out)
    assert names == sorted(f"{n}.schema.json" for n in (
        "config", "rules", "event-reading", "event-deadletter", "event-alert", "event-command",
        "event-command-ack"))
    config = json.loads((tmp_path / "config.schema.json").read_text())
    assert {"mqtt", "inputs", "influx", "outbox", "rules", "devices", "http"} <= set(
        config["properties"])
    alert = json.loads((tmp_path / "event-alert.schema.json").read_text())
    event = AlertEvent("hot", "gh-1", AlertState.FIRING, 1_795_755_841_000_000_000, "warning",
                       31.5, "gh-1 is hot", {}, 1, 2, None, "t1")
    assert list(event.to_dict()) == alert["required"]  # what is published is what is documented
