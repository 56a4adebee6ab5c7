"""``outpost events`` and the gateway's log tell a real run in sentences: every kind of
journal entry a gateway writes, from real commands, acknowledgements, refusals, retries and
notifications, says what happened, to which device and why; no line of the actions' log
holds a Python or JSON structure or ``None``."""

from __future__ import annotations

import json
import re
import time
import uuid

import paho.mqtt.client as mqtt

from tests.cli.helpers import lines, outpost
from tests.gateway.harness import Device, GatewayProcess, gateway_config, write_config
from tests.services import free_port, http_request

REPRS = re.compile(r"None|[{}\[\]']")
# Every kind of entry the gateway journals (gateway/journal.py's callers).
JOURNAL_KINDS = {
    "alert", "alert_inhibited", "command", "command_refused", "command_deferred",
    "command_retry", "command_acked", "command_rejected", "command_timed_out",
    "command_superseded", "notification", "rules_reload",
}  # fmt: skip

RULES = """\
rules:
  - name: hot
    match: {metric: temperature, device: gh-1}
    when: value > 30
    clear: value < 28
    message: "{device} is {value:.1f} °C"
    actions:
      - command: {device: fan-1, set: {speed: 100}}
      - command: {device: fan-2, set: {on: true}}
      - command: {device: fan-3, set: {speed: 1}}
      - command: {device: "{device}-vent", set: {open: true}}
    on_resolved:
      - command: {device: fan-1, set: {speed: 0}}
  - name: very_hot
    match: {metric: temperature, device: gh-1}
    when: value > 34
    severity: critical
    actions:
      - command: {device: fan-3, set: {speed: 2}}
  - name: humid
    match: {metric: humidity}
    when: value > 90
    message: "{device} is at {value:.0f} % humidity"
"""


class Fans:
    """fan-1 acknowledges, fan-2 says no, fan-3 never answers."""

    def __init__(self, port: int) -> None:
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"fans-{uuid.uuid4().hex[:8]}"
        )
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.client.subscribe("devices/+/set", qos=1)
        time.sleep(0.2)

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        device = msg.topic.split("/")[1]
        command = json.loads(msg.payload)
        answer = {"fan-1": {"ok": True}, "fan-2": {"ok": False, "error": "jammed"}}.get(device)
        if answer is not None:
            client.publish(f"devices/{device}/ack", json.dumps({"id": command["id"], **answer}), 1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _wait_for(base: str, kinds: set[str], rule: str | None = None) -> None:
    """Until the journal holds an entry of each of ``kinds`` (of ``rule``, if given)."""
    deadline = time.monotonic() + 30
    while True:
        status, _, body = http_request("GET", f"{base}/api/v1/events?limit=1000")
        assert status == 200, body
        events = json.loads(body)["events"]
        assert {e["kind"] for e in events} <= JOURNAL_KINDS  # each kind has its sentence
        seen = {e["kind"] for e in events if rule is None or e["rule"] == rule}
        if kinds <= seen:
            return
        assert time.monotonic() < deadline, f"never journaled: {kinds - seen}"
        time.sleep(0.3)


def test_outpost_events_and_the_log_tell_a_real_run_in_sentences(
    tmp_path, mosquitto, influxdb, influx_db
) -> None:
    (tmp_path / "rules.yaml").write_text(RULES)
    (tmp_path / "api.token").write_text("t" * 32)
    (tmp_path / "api.token").chmod(0o600)
    quick = {"ack_timeout": "300ms", "retries": 1}
    config = gateway_config(
        mosquitto.port, influxdb.url, influx_db, rules=["rules.yaml"],
        devices={
            "fan-1": {"commands": {"speed": {"type": "int", "min": 0, "max": 100}},
                      "min_interval": "5s", **quick},
            "fan-2": {"commands": {"on": {"type": "bool"}}, **quick},
            "fan-3": {"commands": {"speed": {"type": "int"}}, **quick},
        },
        notify={
            "pager": {"type": "log"},
            "hook": {"webhook": f"http://127.0.0.1:{free_port()}/hook", "retries": 0,
                     "timeout": "1s"},
        },
    )  # fmt: skip
    config["http"]["token_file"] = "api.token"
    path = write_config(tmp_path / "outpost.yaml", config)
    base = f"http://{config['http']['listen']}"
    auth = {"Authorization": f"Bearer {'t' * 32}", "Content-Type": "application/json"}
    fans = Fans(mosquitto.port)
    try:
        with GatewayProcess(path) as gateway, Device(mosquitto.port) as sensor:
            silence = {"rule": "humid", "device": "gh-*", "for": "1h"}
            status, _, body = http_request(
                "POST", f"{base}/api/v1/silences", json.dumps(silence).encode(), auth
            )
            assert status == 201, body
            sensor.publish("sensors/gh-1/temperature", "35")
            _wait_for(base, {"command_acked"})
            for command in ({"device": "fan-9", "set": {"speed": 1}},
                            {"device": "fan-1", "set": {"speed": 500}}):  # fmt: skip
                http_request("POST", f"{base}/api/v1/commands", json.dumps(command).encode(), auth)
            sensor.publish("sensors/gh-1/temperature", "20")  # resolves: fan-1 off, deferred
            sensor.publish("sensors/gh-2/humidity", "95")  # silenced notifications
            # Inhibition needs a gateway that was deaf, rules_reload a changed rule file:
            # test_event_sentences.py renders them.
            _wait_for(base, JOURNAL_KINDS - {"alert_inhibited", "rules_reload"})
            _wait_for(base, {"alert"}, rule="command_failed")
            told = outpost("events", "-c", str(path), cwd=tmp_path)
            log = gateway.log()
    finally:
        fans.close()
    assert told.returncode == 0, told.stderr
    said = [line.split("  ", 1)[1] for line in lines(told.stdout)]
    for line in said:
        assert not REPRS.search(line.split("  [trace ")[0]), line
    expected = [
        r"fan-1: set speed=100 \(rule hot on gh-1; command \w+\)",
        r"fan-1: acknowledged speed=100 \(rule hot on gh-1; command \w+\)",
        r"fan-1: speed=0 waits for min_interval, sent in [\d.]+ s \(rule hot on gh-1\)",
        r"fan-2: REJECTED on=true: jammed \(rule hot on gh-1; command \w+\)",
        r"fan-3: speed=\d replaced by a newer command \(rule \w+ on gh-1; command \w+\)",
        r"fan-3: no answer yet, sending speed=\d again \(retry 1; command \w+\)",
        r"fan-3: never acknowledged speed=\d after 2 attempts \(rule \w+ on gh-1; command \w+\)",
        r"alert command_failed FIRING on fan-3: fan-3 did not acknowledge speed=\d after 1 "
        r"retries \(critical\)",
        r"gh-1-vent: REFUSED open=true: device gh-1-vent is not listed under devices: "
        r"\(rule hot on gh-1\)",
        r"fan-9: REFUSED speed=1: device fan-9 is not listed under devices: \(sent by hand\)",
        r"fan-1: REFUSED speed=500: speed: 500 is above the maximum 100 \(sent by hand\)",
        r"notifier pager: sent hot FIRING on gh-1 \(1 attempt\)",
        r"notifier hook: FAILED to send hot FIRING on gh-1 \(1 attempt, \w+\)",
        r"notifier pager: silenced humid FIRING on gh-2 \(silence 1\)",
        r"alert humid FIRING on gh-2: gh-2 is at 95 % humidity \(warning\)",
        r"alert hot FIRING on gh-1: gh-1 is 35.0 °C \(warning\)",
    ]
    untold = [e for e in expected if not any(re.fullmatch(e, line.split("  [trace ")[0])
                                              for line in said)]  # fmt: skip
    assert untold == [], "\n".join(said)
    # The log says the same things the same way: no dict, list or None in any line of the
    # actions' loggers, and the log notifier writes the alert's sentence.
    actions = [
        line for line in log.splitlines()
        if re.search(r" outpost\.(commands|alerts|notify): ", line)
    ]  # fmt: skip
    assert actions, log
    for line in actions:
        assert not REPRS.search(line.split(": ", 1)[1]), line
    assert any(
        "outpost.notify: alert hot FIRING on gh-1: gh-1 is 35.0 °C (warning)" in line
        for line in actions
    ), "\n".join(actions)
    assert any("fan-1: set speed=100 (rule hot on gh-1; command " in line for line in actions)
