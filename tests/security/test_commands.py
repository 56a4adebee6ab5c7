"""An MQTT message can never make the gateway command a device it was not configured for.

A rule that commands ``{device}`` (the device of the reading) is the widest door a
reading can open: device ids come from topics and payloads, which any publisher
chooses. Crafted ids (wildcards, slashes, unlisted devices) must be refused and
journaled, and nothing may be published on any command topic but the listed device's.
"""

from __future__ import annotations

import json
import time

from tests.gateway.harness import Device, GatewayProcess, gateway_config, write_config
from tests.services import http_request

RULES = """
rules:
  - name: hot
    match: {metric: temperature}
    when: value > 30
    severity: warning
    actions:
      - command: {device: "{device}", set: {speed: 100}}
"""

CRAFTED = ["+", "#", "fan-1/set", "fan-1/+", "fan-1/#", "x/+/y", "fan-1/../fan-2", "fan-2",
           "heater-1", "fan-1 ", "FAN-1"]


def _events(base: str) -> list[dict]:
    status, _, body = http_request("GET", f"{base}/api/v1/events?limit=5000")
    assert status == 200, body
    return json.loads(body)["events"]


def test_crafted_and_unlisted_device_ids_never_become_commands(
        tmp_path, mosquitto, influxdb, influx_db) -> None:
    (tmp_path / "rules.yaml").write_text(RULES)
    (tmp_path / "api.token").write_text("t" * 32)
    (tmp_path / "api.token").chmod(0o600)
    config = gateway_config(
        mosquitto.port, influxdb.url, influx_db,
        inputs=[{"topic": "sensors/{device}/{metric}", "format": "value"},
                {"topic": "raw", "format": "json", "device_field": "id"}],
        rules=["rules.yaml"],
        devices={"fan-1": {"commands": {"speed": {"type": "int", "min": 0, "max": 100}},
                           "ack_timeout": "30s", "retries": 0}},
    )
    config["http"]["token_file"] = "api.token"
    base = f"http://{config['http']['listen']}"
    with GatewayProcess(write_config(tmp_path / "outpost.yaml", config)), \
            Device(mosquitto.port, subscribe=["#"]) as watcher:
        for device in CRAFTED:
            watcher.publish("raw", json.dumps({"id": device, "temperature": 35}))
        watcher.publish("sensors/fan-2/temperature", "35")
        watcher.publish("sensors/fan-1/temperature", "35")  # the one listed device, last
        deadline = time.monotonic() + 10
        messages = []
        while not any(m.topic == "devices/fan-1/set" for m in messages):
            assert time.monotonic() < deadline, f"no command for fan-1; saw {messages}"
            messages += watcher.collect(1, timeout=0.2)
        # The API, token in hand, is held to the same list.
        auth = {"Authorization": f"Bearer {'t' * 32}", "Content-Type": "application/json"}
        for device in ("fan-2", "fan-1/set", "+"):
            body = json.dumps({"device": device, "set": {"speed": 1}}).encode()
            status, _, answer = http_request("POST", f"{base}/api/v1/commands", body, auth)
            assert status == 403, (device, answer)
        events = _events(base)
        messages += watcher.collect(100, timeout=0.5)

    commands = [m.topic for m in messages if m.topic.startswith("devices/")
                or m.topic.endswith("/set")]
    assert commands == ["devices/fan-1/set"], commands
    # Ids that could change a topic are dead-lettered by the decoder: no reading, no rule.
    deadletters = {json.loads(json.loads(m.payload)["payload"])["id"]:
                   json.loads(m.payload)["reason"]
                   for m in messages if m.topic == "outpost/deadletter"}
    wild = [d for d in CRAFTED if any(c in d for c in "+#/")]
    assert deadletters == dict.fromkeys(wild, "bad_device")
    # The others reach the rule, whose command is refused by the policy and journaled.
    refused = {(e["device"], e["event"]["origin"]): e["event"]["reason"] for e in events
               if e["kind"] == "command_refused"}
    for device in set(CRAFTED) - set(wild):
        assert refused[(device, "rule")] == "unknown_device", device
    # The API's refusals are journaled too, with the same policy.
    assert refused[("fan-2", "api")] == "unknown_device"
    assert refused[("fan-1/set", "api")] == refused[("+", "api")] == "bad_device"
    assert ("fan-1", "rule") not in refused


def test_a_lone_surrogate_in_a_command_value_is_refused_and_the_gateway_serves_on(
        tmp_path, mosquitto, influxdb, influx_db) -> None:
    """JSON can spell text UTF-8 cannot carry ("\\ud800"): a 400 that says so, not a 500."""
    (tmp_path / "api.token").write_text("t" * 32)
    (tmp_path / "api.token").chmod(0o600)
    config = gateway_config(
        mosquitto.port, influxdb.url, influx_db,
        devices={"lamp-1": {"commands": {"mode": {"type": "str"}}, "retries": 0}},
    )
    config["http"]["token_file"] = "api.token"
    base = f"http://{config['http']['listen']}"
    headers = {"Content-Type": "application/json", "Authorization": "Bearer " + "t" * 32}
    with GatewayProcess(write_config(tmp_path / "outpost.yaml", config)), \
            Device(mosquitto.port, subscribe=["devices/lamp-1/#"]) as lamp:
        for body in (b'{"device": "lamp-1", "set": {"mode": "a\\ud800b"}}',
                     b'{"device": "lamp-1", "set": {"mo\\udfffde": "eco"}}',
                     b'{"device": "lamp-\\ud800", "set": {"mode": "eco"}}'):
            status, _, answer = http_request("POST", f"{base}/api/v1/commands", body, headers)
            assert status == 400, (status, answer)
            assert b"UTF-8" in answer or b"surrogate" in answer, answer
        status, _, answer = http_request(
            "POST", f"{base}/api/v1/commands",
            json.dumps({"device": "lamp-1", "set": {"mode": "eco"}}).encode(), headers)
        assert status in (200, 201, 202), (status, answer)
        (first,) = lamp.collect(1)  # the refused ones, sent before it, never went out
        assert first.topic == "devices/lamp-1/set" and json.loads(first.payload)["mode"] == "eco"
