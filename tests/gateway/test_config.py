"""outpost.yaml: defaults, environment, secret files, and errors reported as file:line."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from gateway.config import load_config
from rules.yamlsrc import SourceError


def write(tmp_path: Path, text: str, name: str = "outpost.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def errors_of(path: Path, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(SourceError) as info:
        load_config(str(path), environ=env or {})
    return [str(p) for p in info.value.problems]


def test_no_file_runs_on_documented_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    loaded = load_config(None)
    cfg = loaded.config
    assert loaded.path is None
    assert (cfg.mqtt.host, cfg.mqtt.port) == ("localhost", 1883)
    assert [(i.topic, i.format, i.qos) for i in cfg.inputs] == [
        ("sensors/{device}/{metric}", "value", 1),
        ("sensors/{device}", "json", 1),
    ]
    assert cfg.inputs[1].time_field == "ts"
    assert cfg.influx.api == "v1" and cfg.influx.db == "outpost"
    assert cfg.influx.url == "http://localhost:8086"
    assert cfg.http.listen == "127.0.0.1:8080"
    assert cfg.state_dir == "./var"
    assert cfg.influx.batch_size == 5000 and cfg.influx.flush_interval == 1.0
    assert cfg.inputs[0].max_payload == 64 * 1024


def test_outpost_yaml_in_current_folder_is_found(tmp_path, monkeypatch):
    write(tmp_path, "mqtt: {port: 1999}\n")
    monkeypatch.chdir(tmp_path)
    assert load_config(None).config.mqtt.port == 1999


def test_every_error_is_reported_with_its_line(tmp_path):
    path = write(
        tmp_path,
        """\
mqtt:
  host: broker
  prot: 1884
influx:
  url: http://db:8086
  flush_interval: soon
  batch_size: 0
inputs:
  - topic: "sensors/{device}/{metric}"
    format: xml
  - topic: "a/{dev}ice"
    format: json
""",
    )
    assert errors_of(path) == [
        f"{path}:3:3: mqtt.prot: unknown key",
        f"{path}:6:19: influx.flush_interval: not a duration: 'soon' "
        "(use e.g. 500ms, 30s, 5m, 1h, 7d)",
        f"{path}:7:15: influx.batch_size: Input should be greater than or equal to 1",
    ]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("1.5h", 5400.0),
        ("30 s", 30.0),  # a space before the unit has always been allowed here
        ("2w", 14 * 86400.0),
        ("400d", 400 * 86400.0),  # a setting may exceed the 366d bound of a rule's for:
        ("1h30m", 5400.0),  # the rules' parser reads compound durations
        (45, 45.0),  # a bare number is seconds
    ],
)
def test_config_durations_are_read_by_the_rules_parser(tmp_path, text, seconds):
    path = write(tmp_path, f"influx: {{flush_interval: {text}}}\n")
    assert load_config(str(path)).config.influx.flush_interval == seconds


@pytest.mark.parametrize("text", ["'60'", "5min", "-1s", "true"])
def test_config_durations_keep_their_error_wording(tmp_path, text):
    path = write(tmp_path, f"influx: {{flush_interval: {text}}}\n")
    [error] = errors_of(path)
    assert error.startswith(f"{path}:1:26: influx.flush_interval: not a duration: ")


def test_cross_checks_report_lines_after_schema_passes(tmp_path):
    path = write(
        tmp_path,
        """\
inputs:
  - topic: "sensors/{device}/{metric}"
    format: xml
  - topic: "a/{dev}ice"
    format: json
  - topic: "plain/topic"
    format: value
""",
    )
    errors = errors_of(path)
    assert errors[0].startswith(f"{path}:3:13: unknown format 'xml'")
    assert errors[1] == f"{path}:4:12: a/{{dev}}ice: a {{placeholder}} must fill a whole level"
    assert errors[2] == (
        f"{path}:6:12: format value needs {{metric}} in the topic or a metric: key"
    )


def test_device_ids_in_the_config_follow_the_one_rule_with_their_lines(tmp_path):
    path = write(
        tmp_path,
        """\
inputs:
  - topic: "site/+"
    format: json
    device: "fan-1/set"
devices:
  "gh\\nx": {}
  gh-1: {}
serial:
  - port: /dev/ttyUSB0
    device: "+"
""",
    )
    assert errors_of(path) == [
        f"{path}:4:13: inputs.0.device: device id 'fan-1/set' contains '/' and cannot be "
        "part of a topic",
        f"{path}:6:12: devices.gh\\nx: device id 'gh\\nx' contains a control character",
        f"{path}:10:13: serial.0.device: device id '+' contains '+' and cannot be part of a "
        "topic",
    ]


def test_yaml_syntax_error_and_duplicate_key_have_lines(tmp_path):
    assert errors_of(write(tmp_path, "mqtt:\n  host: a\n  host: b\n")) == [
        f"{tmp_path / 'outpost.yaml'}:3:3: duplicate key 'host' (first at line 2)"
    ]
    broken = write(tmp_path, "mqtt: {host: a\ninflux: {}\n", "broken.yaml")
    assert errors_of(broken)[0].startswith(f"{broken}:2:")


def test_environment_variables_and_defaults(tmp_path):
    path = write(
        tmp_path,
        """\
mqtt:
  host: ${BROKER}
  username: ${MQTT_USER:-}
  client_id: gw-${SITE:-home}
""",
    )
    cfg = load_config(str(path), environ={"BROKER": "10.0.0.5"}).config
    assert cfg.mqtt.host == "10.0.0.5"
    assert cfg.mqtt.username is None
    assert cfg.mqtt.client_id == "gw-home"
    assert errors_of(path) == [
        f"{path}:2:9: environment variable BROKER is not set (write ${{BROKER:-default}} "
        "to allow that)"
    ]


def test_secret_files_relative_to_the_config_file(tmp_path):
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "mqtt.pass").write_text("s3cret\n")
    (tmp_path / "secrets" / "influx.token").write_text("tok-123\n")
    path = write(
        tmp_path,
        """\
mqtt: {username: gw, password_file: secrets/mqtt.pass}
influx: {url: http://db:8086, org: home, bucket: sensors, token_file: secrets/influx.token}
""",
    )
    cfg = load_config(str(path), environ={}).config
    assert cfg.mqtt.password.get_secret_value() == "s3cret"
    assert cfg.influx.token.get_secret_value() == "tok-123"
    assert cfg.influx.api == "v2"
    assert "s3cret" not in repr(cfg) and "tok-123" not in repr(cfg)


def test_missing_secret_file_and_half_v2_settings(tmp_path):
    path = write(
        tmp_path,
        """\
mqtt: {password_file: /nonexistent/pass}
influx: {org: home, bucket: sensors}
""",
    )
    errors = errors_of(path)
    assert errors[0].startswith(f"{path}:1:23: password_file: cannot read /nonexistent/pass")
    assert len(errors) == 1  # the secret error stops before schema validation
    path2 = write(tmp_path, "influx: {org: home, bucket: sensors}\n", "v2.yaml")
    assert errors_of(path2) == [
        f"{path2}:1:9: influx: InfluxDB 2.x needs org, bucket and token; missing ['token']"
    ]


def test_yaml_on_off_yes_stay_strings(tmp_path):
    path = write(
        tmp_path,
        """\
devices:
  plug-1:
    commands: {power: {enum: [ON, OFF]}, eco: {enum: [yes, no, true]}}
""",
    )
    cfg = load_config(str(path), environ={}).config
    assert cfg.devices["plug-1"].commands["power"].enum == ["ON", "OFF"]
    assert cfg.devices["plug-1"].commands["eco"].enum == ["yes", "no", True]


def test_config_check_cli_exit_codes(tmp_path):
    good = write(tmp_path, "mqtt: {host: broker}\n", "good.yaml")
    bad = write(tmp_path, "mqtt: {hots: broker}\n", "bad.yaml")
    ok = subprocess.run(
        [sys.executable, "-m", "gateway", "config", "check", "-c", str(good)],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0 and "ok" in ok.stdout
    fail = subprocess.run(
        [sys.executable, "-m", "gateway", "config", "check", "-c", str(bad)],
        capture_output=True,
        text=True,
    )
    assert fail.returncode == 1
    assert fail.stderr.strip() == f"{bad}:1:8: mqtt.hots: unknown key"


def test_run_with_bad_config_exits_2_before_connecting(tmp_path):
    bad = write(tmp_path, "mqtt: {host: 192.0.2.1, port: nope}\n")
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "run", "-c", str(bad)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert result.stderr.startswith(f"{bad}:1:31: mqtt.port: Input should be a valid integer")
    assert "connecting" not in result.stderr
    assert time.monotonic() - started < 10


def test_relative_paths_are_relative_to_the_config_file(tmp_path, monkeypatch):
    conf_dir = tmp_path / "etc"
    conf_dir.mkdir()
    path = write(
        conf_dir,
        """\
mqtt: {tls: {ca: certs/ca.crt, cert: /abs/c.crt, key: certs/c.key}}
rules: ["rules.d/*.yaml"]
state_dir: var
""",
    )
    monkeypatch.chdir(tmp_path)
    cfg = load_config(str(path), environ={}).config
    assert cfg.mqtt.tls.ca == str(conf_dir / "certs/ca.crt")
    assert cfg.mqtt.tls.cert == "/abs/c.crt"
    assert cfg.state_dir == str(conf_dir / "var")
    assert cfg.rules == [str(conf_dir / "rules.d/*.yaml")]
