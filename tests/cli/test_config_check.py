"""``outpost config check`` runs every check ``outpost run`` makes, and says every problem
in one round as ``file:line:col: message``; a config it passes starts and connects."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

from tests.cli.helpers import lines, outpost, problems
from tests.gateway.harness import GatewayProcess
from tests.services import free_port, http_request

CONFIG = """\
mqtt: {{host: 127.0.0.1, port: {mqtt}, client_id: {client}}}
influx:
  url: {url}
  database: {db}
rules:
  - rules/greenhouse.yaml
  - {second}
devices:
  fan-1:
    commands: {{speed: {{type: int, min: 0, max: 100}}}}
http: {{listen: "127.0.0.1:{http}", token_file: api.token}}
state_dir: ./var
"""

# Five things that are wrong only against the rest of the config: line 6 commands an
# unlisted device, line 9 a key fan-1 does not have and a value above its maximum.
BAD_RULES = """\
rules:
  - name: hot
    match: {metric: temperature}
    when: value > 30
    actions:
      - command: {device: fan-9, set: {speed: 100}}
      - command:
          device: fan-1
          set: {turbo: 1, speed: 150}
"""
GOOD_RULES = """\
rules:
  - name: hot
    match: {metric: temperature}
    when: value > 30
    actions:
      - command: {device: fan-1, set: {speed: 100}}
"""


def _write(folder: Path, mosquitto_port: int, influx_url: str, db: str, **over: str) -> Path:
    (folder / "rules").mkdir(exist_ok=True)
    (folder / "rules" / "greenhouse.yaml").write_text(over.pop("rules", BAD_RULES))
    (folder / "api.token").write_text("t" * 32)
    (folder / "api.token").chmod(0o600)
    fields = {
        "mqtt": str(mosquitto_port),
        "client": f"outpost-test-{uuid.uuid4().hex[:8]}",
        "url": influx_url,
        "db": db,
        "second": "rules/missing.yaml",
        "http": str(free_port()),
        **over,
    }
    config = folder / "outpost.yaml"
    config.write_text(CONFIG.format(**fields))
    return config


def test_config_check_finds_the_five_lies_in_one_round_and_run_refuses_them(
    tmp_path, mosquitto, influxdb, influx_db
) -> None:
    config = _write(tmp_path, mosquitto.port, influxdb.url.removeprefix("http://"), influx_db)

    check = outpost("config", "check", "-c", str(config), cwd=tmp_path)
    assert check.returncode == 1, check.stdout + check.stderr
    assert check.stdout == ""
    found = problems(check.stderr)
    assert [(name, line) for name, line, _ in found] == [
        ("outpost.yaml", 3),  # influx.url without a scheme
        ("outpost.yaml", 7),  # a rules file that does not exist
        ("greenhouse.yaml", 6),  # a device not listed under devices:
        ("greenhouse.yaml", 9),  # a key fan-1 does not have
        ("greenhouse.yaml", 9),  # a value above its maximum
    ], check.stderr
    messages = [message for _, _, message in found]
    assert "influx.url" in messages[0] and "http://" in messages[0]
    assert "no such file" in messages[1] and "missing.yaml" in messages[1]
    assert "fan-9 is not listed under devices:" in messages[2]
    assert "turbo is not among the commands of fan-1" in messages[3]
    assert "150 is above the maximum 100" in messages[4]

    # `run` says the same, in the same words, and connects to nothing.
    run = outpost("run", "-c", str(config), cwd=tmp_path, timeout=60)
    assert run.returncode == 2
    assert lines(run.stderr) == lines(check.stderr), run.stderr
    assert "connecting" not in run.stdout + run.stderr

    # Told what to fix, the user fixes it: the check passes and the gateway runs.
    fixed = _write(
        tmp_path, mosquitto.port, influxdb.url, influx_db,
        second="rules/*.yaml", rules=GOOD_RULES,
    )  # fmt: skip
    ok = outpost("config", "check", "-c", str(fixed), cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "ok" in ok.stdout and "1 rule(s)" in ok.stdout
    with GatewayProcess(fixed) as gateway:
        gateway.wait_log("connected to")


def test_config_check_reads_every_file_and_address_the_gateway_would(
    tmp_path, mosquitto, influxdb, influx_db
) -> None:
    (tmp_path / "hook.url").write_text("ftp://hooks.example/alert\n")
    (tmp_path / "hook.url").chmod(0o600)
    (tmp_path / "api.token").write_text("t" * 32)
    (tmp_path / "api.token").chmod(0o600)
    config = tmp_path / "outpost.yaml"
    config.write_text(
        f"""\
mqtt:
  host: 127.0.0.1
  port: {mosquitto.port}
  tls: {{ca: certs/ca.crt}}
influx: {{url: "{influxdb.url}", database: {influx_db}}}
rules: []
serial:
  - {{port: /dev/ttyUSB0, device: probe-1, profile: bme281}}
devices:
  fan-1: {{convention: zigbee3mqtt}}
notify:
  pager: {{webhook_file: hook.url}}
http: {{listen: "192.0.2.1:8080", token_file: api.token}}
state_dir: ./var
"""
    )
    check = outpost("config", "check", "-c", str(config), cwd=tmp_path)
    assert check.returncode == 1, check.stdout
    found = problems(check.stderr)
    assert [(name, line) for name, line, _ in found] == [
        ("outpost.yaml", 4),
        ("outpost.yaml", 8),
        ("outpost.yaml", 10),
        ("outpost.yaml", 12),
        ("outpost.yaml", 13),
    ], check.stderr
    ca, profile, convention, webhook, listen = (message for _, _, message in found)
    assert "mqtt.tls.ca: cannot read" in ca and "No such file or directory" in ca
    assert "unknown sensor profile" in profile and "bme280" in profile
    assert "unknown device convention" in convention and "zigbee2mqtt" in convention
    assert "notify.pager.webhook" in webhook and "http://" in webhook
    assert listen == "http.listen 192.0.2.1:8080 is not an address of this machine " \
        "(192.0.2.1; change http.listen)"
    assert "hooks.example" not in check.stderr  # a webhook URL is a secret
    run = outpost("run", "-c", str(config), cwd=tmp_path)
    assert run.returncode == 2 and lines(run.stderr) == lines(check.stderr), run.stderr
    assert "Traceback" not in run.stderr


def test_config_check_json_lists_the_same_problems(tmp_path, mosquitto, influxdb, influx_db):
    config = _write(tmp_path, mosquitto.port, "localhost:8086", influx_db)
    result = outpost("config", "check", "-c", str(config), "--json", cwd=tmp_path)
    assert result.returncode == 1
    answer = json.loads(result.stdout)
    assert answer["ok"] is False
    assert [(Path(e["file"]).name, e["line"]) for e in answer["errors"]] == [
        ("outpost.yaml", 3),
        ("outpost.yaml", 7),
        ("greenhouse.yaml", 6),
        ("greenhouse.yaml", 9),
        ("greenhouse.yaml", 9),
    ]


def test_a_reload_is_held_to_the_devices_like_the_start(
    tmp_path, mosquitto, influxdb, influx_db
) -> None:
    port = str(free_port())
    config = _write(
        tmp_path, mosquitto.port, influxdb.url, influx_db,
        second="rules/*.yaml", rules=GOOD_RULES, http=port,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    token = {"Authorization": f"Bearer {'t' * 32}"}
    with GatewayProcess(config):
        (tmp_path / "rules" / "greenhouse.yaml").write_text(BAD_RULES)
        status, _, body = http_request("POST", f"{base}/api/v1/rules/reload", b"{}", token)
        assert status == 422, body
        deadline = time.monotonic() + 10
        while True:
            status, _, body = http_request("GET", f"{base}/api/v1/rules")
            text = body.decode()
            if "greenhouse.yaml:6:" in text or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert "greenhouse.yaml:6:27: rule hot: command to fan-9" in text, text
        assert "greenhouse.yaml:9:" in text and "above the maximum 100" in text
        rules = json.loads(body)
        assert [r["name"] for r in rules["rules"]] == ["hot"]  # the old rules keep running
