"""Forged log lines: text from outside that would start a line of its own in the log.

Whoever reads the gateway's log — a person, ``journalctl``, a log shipper — takes each
line for something the gateway said. A newline inside a device id, a JSON key or an
API request would let a sender write a line of its choosing ("ERROR … credentials
leaked", or a fake "device online"). Every such string is escaped before it is logged,
and a device id holding a control character is refused at ingest.
"""

from __future__ import annotations

import json

from tests.security.ingest import IngestRig
from tests.services import http_request

FORGED = "2026-01-01 00:00:00,000 CRITICAL outpost: FORGED"


def _forged_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if line.startswith("2026-01-01 00:00:00,000")]


def test_text_from_outside_cannot_start_a_log_line(tmp_path, mosquitto, influxdb, influx_db):
    token = tmp_path / "api.token"
    token.write_text("s3cret-token\n")
    token.chmod(0o600)
    inputs = [
        {"topic": "sensors/{device}", "format": "json"},
        {"topic": "site/+", "format": "json", "device_field": "id"},
    ]
    deep = {f"x\n{FORGED} in a JSON key\n": {"a": {}}}
    inner = deep[next(iter(deep))]["a"]
    for _ in range(20):  # deeper than the json format reads
        inner["a"] = {}
        inner = inner["a"]
    with IngestRig(
        tmp_path, mosquitto, influxdb, influx_db, inputs=inputs,
        http={"token_file": str(token)}, devices={"fan-1": {"commands": {"speed": {}}}},
    ) as rig:
        rig.publish("sensors/gh-1", json.dumps(deep))
        rig.publish("site/a", json.dumps({"id": f"gh-1\n{FORGED} in a device id", "t": 1}))
        rig.publish("site/a", json.dumps({"id": "gh-1\x1b[2J\x1b[H", "t": 1}))
        rig.publish("site/a", json.dumps({"id": "gh-1\u2028" + FORGED, "t": 1}))
        letters = rig.deadletters(4)
        status, _, answer = http_request(
            "POST",
            f"http://{rig.config['http']['listen']}/api/v1/commands",
            json.dumps({"device": f"fan-1\n{FORGED} in an API request", "set": {"speed": 1}})
            .encode(),
            {"Authorization": "Bearer s3cret-token", "Content-Type": "application/json"},
        )
        rig.gateway.wait_log("refused command to")
    log = rig.gateway.log()
    assert _forged_lines(log) == []
    assert [d["reason"] for d in letters] == ["too_deep", "bad_device", "bad_device", "bad_device"]
    assert status == 403, answer
    assert "\x1b" not in log and "\u2028" not in log
    # Still told, escaped, on the line that reports it.
    assert f"x\\n{FORGED} in a JSON key\\n" in log
    assert f"refused command to fan-1\\n{FORGED} in an API request" in log
