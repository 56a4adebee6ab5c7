"""Rules in the running gateway: readings published → alert events and commands on MQTT."""

from __future__ import annotations

import json
import signal
import time
from datetime import datetime

import pytest

from tests.gateway.harness import Device, GatewayProcess, gateway_config, write_config

HOT_RULE = """\
rules:
  - name: hot
    match: {metric: temperature, device: "gh-*"}
    when: value > 30
    for: 1s
    clear: value < 28
    severity: warning
    message: "{device} is {value:.1f} °C"
    actions:
      - command: {device: fan-1, set: {speed: 100}}
    on_resolved:
      - command: {device: fan-1, set: {speed: 0}}
"""

EXTRA_RULE = """
  - name: cold
    match: {metric: temperature}
    when: value < 5
    severity: info
"""


def ms(text: str | None) -> float:
    assert text is not None
    return datetime.fromisoformat(text).timestamp()


@pytest.fixture
def rules_config(tmp_path, mosquitto, influxdb, influx_db):
    (tmp_path / "rules.d").mkdir()
    (tmp_path / "rules.d" / "greenhouse.yaml").write_text(HOT_RULE)
    config = gateway_config(
        mosquitto.port,
        influxdb.url,
        influx_db,
        rules=["rules.d/*.yaml"],
        devices={"fan-1": {"commands": {"speed": {"type": "int", "min": 0, "max": 100}}}},
    )
    return write_config(tmp_path / "outpost.yaml", config)


def test_threshold_alert_goes_pending_firing_resolved_and_commands_the_fan(
    rules_config, mosquitto, influxdb, influx_db
):
    with (
        GatewayProcess(rules_config),
        Device(mosquitto.port, subscribe=["outpost/alerts/#", "devices/+/set"]) as device,
    ):
        device.publish("sensors/gh-1/temperature", "25")
        sent_hot = time.time()
        device.publish("sensors/gh-1/temperature", "31.5")
        pending, firing, fan_on = device.collect(3, timeout=10)
        device.publish("sensors/gh-1/temperature", "29")  # between clear and when: still firing
        device.publish("sensors/gh-1/temperature", "27")
        resolved, fan_off = device.collect(2, timeout=10)
        rows = influxdb.wait_for_count(influx_db, 3, measurement="outpost_alerts")

    assert pending.topic == "outpost/alerts/hot/gh-1"
    p = json.loads(pending.payload)
    assert (p["rule"], p["device"], p["state"], p["severity"], p["value"]) == (
        "hot",
        "gh-1",
        "pending",
        "warning",
        31.5,
    )
    assert p["message"] == "gh-1 is 31.5 °C" and p["fired_at"] is None and p["trace_id"]
    assert abs(ms(p["active_at"]) - sent_hot) < 1.0 and p["at"] == p["active_at"]
    f = json.loads(firing.payload)
    assert f["state"] == "firing" and f["active_at"] == p["active_at"]
    assert 1.0 <= ms(f["fired_at"]) - ms(f["active_at"]) < 1.5  # for: 1s, ticked on time
    assert f["trace_id"] == p["trace_id"]
    assert fan_on.topic == "devices/fan-1/set"
    on = json.loads(fan_on.payload)
    assert on["speed"] == 100 and len(on["id"]) >= 8
    r = json.loads(resolved.payload)
    assert r["state"] == "resolved" and r["value"] == 27 and r["resolved_at"] == r["at"]
    assert json.loads(fan_off.payload)["speed"] == 0
    rows.sort(key=lambda row: row["time"])
    assert [row["tags"]["state"] for row in rows] == ["pending", "firing", "resolved"]


def test_pending_alert_survives_a_restart_without_being_announced_again(rules_config, mosquitto):
    (rules_config.parent / "rules.d" / "greenhouse.yaml").write_text(
        HOT_RULE.replace("for: 1s", "for: 4s")
    )
    with Device(mosquitto.port, subscribe=["outpost/alerts/#"]) as device:
        first = GatewayProcess(rules_config).start()
        device.publish("sensors/gh-1/temperature", "31")
        [pending] = device.collect(1, timeout=5)
        assert first.stop(signal.SIGTERM) == 0
        second = GatewayProcess(rules_config).start()
        assert "1 alerts restored from the journal" in second.log()
        device.publish("sensors/gh-1/temperature", "32")
        [firing] = device.collect(1, timeout=10)
        second.stop()
    p, f = json.loads(pending.payload), json.loads(firing.payload)
    assert f["state"] == "firing"
    assert f["active_at"] == p["active_at"]  # the 4 s count did not restart
    assert 4.0 <= ms(f["fired_at"]) - ms(p["active_at"]) < 5.0


def test_hot_reload_keeps_state_of_unchanged_rules_and_refuses_broken_files(
    rules_config, mosquitto
):
    rule_file = rules_config.parent / "rules.d" / "greenhouse.yaml"
    with (
        GatewayProcess(rules_config) as gateway,
        Device(mosquitto.port, subscribe=["outpost/alerts/#"]) as device,
    ):
        device.publish("sensors/gh-1/temperature", "31")
        _pending, firing = device.collect(2, timeout=10)
        rule_file.write_text(HOT_RULE + EXTRA_RULE)
        gateway.proc.send_signal(signal.SIGHUP)
        gateway.wait_log("rules reloaded: 1 kept, 0 changed, 1 added")
        device.publish("sensors/gh-1/temperature", "33")  # still firing: no new event
        device.publish("sensors/gh-2/temperature", "3")  # the new rule works
        [cold] = device.collect(1, timeout=10)
        assert json.loads(cold.payload)["rule"] == "cold"
        rule_file.write_text(HOT_RULE + "  - name: broken\n    when: value >\n")
        gateway.wait_log("rule files changed but are invalid", timeout=10)
        assert "greenhouse.yaml:" in gateway.log().split("invalid")[-1]
        device.publish("sensors/gh-1/temperature", "20")
        [resolved] = device.collect(1, timeout=10)
    assert json.loads(firing.payload)["state"] == "firing"
    assert json.loads(resolved.payload)["state"] == "resolved"


def test_rules_added_by_a_reload_see_readings_when_the_gateway_started_with_none(
    rules_config, mosquitto
):
    rule_file = rules_config.parent / "rules.d" / "greenhouse.yaml"
    rule_file.unlink()  # the glob matches nothing at start
    with (
        GatewayProcess(rules_config) as gateway,
        Device(mosquitto.port, subscribe=["outpost/alerts/#"]) as device,
    ):
        rule_file.write_text("rules:" + EXTRA_RULE)
        gateway.proc.send_signal(signal.SIGHUP)
        gateway.wait_log("rules reloaded: 0 kept, 0 changed, 1 added")
        device.publish("sensors/gh-2/temperature", "3")
        [cold] = device.collect(1, timeout=10)
    assert json.loads(cold.payload)["rule"] == "cold"


def test_invalid_rule_file_stops_the_start_with_its_line(tmp_path, mosquitto, influxdb, influx_db):
    (tmp_path / "bad.yaml").write_text("rules:\n  - name: x\n    when: value >> 3\n")
    config = gateway_config(mosquitto.port, influxdb.url, influx_db, rules=["bad.yaml"])
    gateway = GatewayProcess(write_config(tmp_path / "outpost.yaml", config))
    gateway.start(wait_for=None)
    assert gateway.proc.wait(15) == 2
    gateway.stop()
    assert f"{tmp_path / 'bad.yaml'}:3:" in gateway.log()
    assert "connecting" not in gateway.log()


def test_events_cli_shows_the_trail_of_one_reading(rules_config, mosquitto):
    import subprocess
    import sys

    with (
        GatewayProcess(rules_config),
        Device(mosquitto.port, subscribe=["outpost/alerts/#"]) as device,
    ):
        device.publish("sensors/gh-1/temperature", "35")
        _pending, firing = device.collect(2, timeout=10)
    trace = json.loads(firing.payload)["trace_id"]
    run = [sys.executable, "-m", "gateway", "events", "-c", str(rules_config)]
    text = subprocess.run([*run, "--trace", trace], capture_output=True, text=True, check=True)
    lines = text.stdout.splitlines()
    assert len(lines) == 3, text.stdout
    assert "alert hot PENDING on gh-1: gh-1 is 35.0 °C" in lines[0]
    assert "alert hot FIRING on gh-1" in lines[1]
    assert "fan-1: set speed=100 (rule hot on gh-1; command " in lines[2]
    as_json = subprocess.run(
        [*run, "--json", "--since", "1h"], capture_output=True, text=True, check=True
    )
    kinds = [json.loads(line)["kind"] for line in as_json.stdout.splitlines()]
    assert kinds == ["alert", "alert", "command"]


def test_a_redelivered_reading_causes_no_second_alert_or_command(rules_config, mosquitto):
    (rules_config.parent / "rules.d" / "greenhouse.yaml").write_text(
        HOT_RULE.replace("    for: 1s\n", ""))
    from tests.gateway.test_actions_e2e import FakeFan

    reading = json.dumps({"temperature": 35.0, "ts": int(time.time())})
    fan = FakeFan(mosquitto.port)  # acknowledges, so nothing is left to resume
    with Device(mosquitto.port, subscribe=["outpost/alerts/#", "devices/+/set"]) as device:
        first = GatewayProcess(rules_config).start()
        device.publish("sensors/gh-1", reading)
        firing, command = device.collect(2, timeout=10)
        fan.wait(1)
        device.publish("sensors/gh-1", reading)  # the same message again (QoS 1 redelivery)
        assert device.collect(1, timeout=2) == []
        first.stop()
        second = GatewayProcess(rules_config).start()  # and again after a restart
        device.publish("sensors/gh-1", reading)
        assert device.collect(1, timeout=2) == []
        second.stop()
    fan.close()
    assert len(fan.commands) == 1
    assert json.loads(firing.payload)["state"] == "firing"
    assert command.topic == "devices/fan-1/set"
