"""``outpost init``: a commented starter config and rules file, from flags or questions, that
``outpost config check`` passes and the gateway runs with; nothing overwritten unasked."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from tests.cli.helpers import MODULE, in_pty, lines, outpost
from tests.gateway.harness import Device, GatewayProcess
from tests.services import free_port


def _reading() -> str:
    return json.dumps({"temperature": 21.5, "ts": int(time.time())})


def test_init_from_flags_gives_a_config_that_checks_and_runs_on_influxdb_1(
    tmp_path, mosquitto, influxdb, influx_db
) -> None:
    result = outpost(
        "init", "--broker", f"127.0.0.1:{mosquitto.port}", "--influx-url", influxdb.url,
        "--influx-db", influx_db, "--listen", f"127.0.0.1:{free_port()}", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    config, rules = tmp_path / "outpost.yaml", tmp_path / "rules.d" / "starter.yaml"
    assert lines(result.stdout)[:2] == ["wrote outpost.yaml", "wrote rules.d/starter.yaml"]
    text = config.read_text()
    assert sum(line.lstrip().startswith("#") for line in text.splitlines()) >= 10  # commented
    assert "temperature_high" in rules.read_text()

    check = outpost("config", "check", cwd=tmp_path)  # ./outpost.yaml
    assert check.returncode == 0, check.stderr
    assert f"broker 127.0.0.1:{mosquitto.port}" in check.stdout
    assert f"database {influx_db}" in check.stdout and "1 rule(s) from 1 file(s)" in check.stdout

    with GatewayProcess(config), Device(mosquitto.port) as sensor:
        sensor.publish("sensors/gh-init", _reading())
        [point] = influxdb.wait_for_count(influx_db, 1, measurement="temperature")
    assert point["tags"] == {"device": "gh-init"} and point["fields"] == {"value": 21.5}


def test_init_for_influxdb_2_writes_org_bucket_and_token_file(
    tmp_path, mosquitto, victoria_metrics
) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "influx.token").write_text("a-token\n")
    (tmp_path / "secrets" / "influx.token").chmod(0o600)
    device = f"gh-{uuid.uuid4().hex[:8]}"
    result = outpost(
        "init", "-c", "etc/outpost.yaml", "--broker", f"127.0.0.1:{mosquitto.port}",
        "--influx-url", victoria_metrics.url, "--influx-org", "home",
        "--influx-bucket", "sensors", "--influx-token-file", "secrets/influx.token",
        "--listen", f"127.0.0.1:{free_port()}", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    config = tmp_path / "etc" / "outpost.yaml"
    assert "bucket: sensors" in config.read_text()
    # The token file given from the working folder, named from the config's folder.
    assert str(tmp_path / "secrets" / "influx.token") in config.read_text()
    check = outpost("config", "check", "-c", str(config), cwd=tmp_path)
    assert check.returncode == 0, check.stderr
    assert "InfluxDB 2.x" in check.stdout and "bucket sensors" in check.stdout
    with GatewayProcess(config), Device(mosquitto.port) as sensor:
        sensor.publish(f"sensors/{device}", _reading())
        deadline = time.monotonic() + 15
        while not (series := victoria_metrics.export(f'{{device="{device}"}}')):
            assert time.monotonic() < deadline, "no reading reached the 2.x API"
            time.sleep(0.3)
    assert series[0]["values"] == [21.5]


def test_init_asks_on_a_terminal_and_the_answers_make_a_valid_config(
    tmp_path, mosquitto, influxdb, influx_db
) -> None:
    typed = "".join(
        answer + "\n"
        for answer in (
            "mosquitto",  # not HOST:PORT: asked again
            f"127.0.0.1:{mosquitto.port}",
            "",  # no MQTT login
            "1",
            influxdb.url,
            influx_db,
        )
    )
    code, shown, _ = in_pty([*MODULE, "init"], cwd=tmp_path, stdout_too=True, typed=typed)
    assert code == 0, shown
    assert "MQTT broker, HOST:PORT [localhost:1883]:" in shown
    assert "'mosquitto' is not HOST:PORT (e.g. localhost:1883)" in shown
    assert "InfluxDB version, 1 or 2 [1]:" in shown
    assert "wrote outpost.yaml" in shown
    check = outpost("config", "check", cwd=tmp_path)
    assert check.returncode == 0, check.stderr
    assert f"broker 127.0.0.1:{mosquitto.port}" in check.stdout
    assert f"database {influx_db}" in check.stdout


def test_init_never_overwrites_without_force(tmp_path) -> None:
    first = outpost("init", "--broker", "broker.lan:1883", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    config = tmp_path / "outpost.yaml"
    before = config.read_bytes()
    (tmp_path / "rules.d" / "starter.yaml").write_text("rules: []  # my own now\n")

    again = outpost("init", "--broker", "other.lan:1883", cwd=tmp_path)
    assert again.returncode == 2
    assert lines(again.stderr) == [
        "outpost init: outpost.yaml exists; not overwritten (--force replaces it)"
    ]
    assert config.read_bytes() == before

    config.unlink()  # a new config, but the rules file the user wrote stays
    kept = outpost("init", "--broker", "other.lan:1883", cwd=tmp_path)
    assert kept.returncode == 0, kept.stderr
    assert "kept rules.d/starter.yaml (it exists; --force replaces it)" in kept.stdout
    assert (tmp_path / "rules.d" / "starter.yaml").read_text() == "rules: []  # my own now\n"

    forced = outpost("init", "--broker", "third.lan:1883", "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert "host: third.lan" in config.read_text()
    assert "temperature_high" in (tmp_path / "rules.d" / "starter.yaml").read_text()


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (["--broker", "mosquitto"], "'mosquitto' is not HOST:PORT (e.g. localhost:1883)"),
        (["--influx-url", "localhost:8086"], "'localhost:8086' needs http:// or https:// in front"),
        (["--influx-org", "home"],
         "InfluxDB 2.x needs --influx-org, --influx-bucket and --influx-token-file"),
    ],
)  # fmt: skip
def test_init_refuses_a_flag_it_cannot_use_in_one_line(tmp_path, flags, said) -> None:
    result = outpost("init", *flags, cwd=tmp_path)
    assert result.returncode == 2
    assert lines(result.stderr) == [f"outpost init: {said}"]
    assert not (tmp_path / "outpost.yaml").exists()
