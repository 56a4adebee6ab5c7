"""docker-compose.yml, its config files and the Dockerfile, checked without a Docker engine."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from gateway.config import load_config

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
# docker-compose.yml has no default secrets: compose refuses to start without these.
SECRETS = {"INFLUX_TOKEN": "t", "INFLUX_PASSWORD": "p", "MQTT_GATEWAY_PASSWORD": "m",
           "MQTT_SIMULATOR_PASSWORD": "s", "GRAFANA_PASSWORD": "g", "OUTPOST_API_TOKEN": "a"}


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def test_docker_compose_accepts_the_file() -> None:
    exe = shutil.which("docker-compose")
    assert exe, "docker-compose not installed (apt-get install docker-compose)"
    result = subprocess.run(
        [exe, "-f", str(COMPOSE), "config", "-q"],
        cwd=REPO,
        env={**os.environ, **SECRETS},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_one_token_variable_reaches_influxdb_and_the_gateway() -> None:
    exe = shutil.which("docker-compose")
    assert exe, "docker-compose not installed (apt-get install docker-compose)"
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFLUX_")}
    result = subprocess.run(
        [exe, "-f", str(COMPOSE), "config"],
        cwd=REPO,
        env={**env, **SECRETS, "INFLUX_TOKEN": "t0ken-from-env", "INFLUX_BUCKET": "b"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    influx, gateway = services["influxdb"]["environment"], services["gateway"]["environment"]
    assert influx["DOCKER_INFLUXDB_INIT_ADMIN_TOKEN"] == gateway["INFLUX_TOKEN"] == "t0ken-from-env"
    assert influx["DOCKER_INFLUXDB_INIT_BUCKET"] == gateway["INFLUX_BUCKET"] == "b"
    assert influx["DOCKER_INFLUXDB_INIT_ORG"] == gateway["INFLUX_ORG"] == "outpost"  # default


def test_one_api_token_variable_reaches_the_gateway_and_prometheus() -> None:
    exe = shutil.which("docker-compose")
    assert exe, "docker-compose not installed (apt-get install docker-compose)"
    env = {k: v for k, v in os.environ.items() if k != "OUTPOST_API_TOKEN"}
    result = subprocess.run(
        [exe, "-f", str(COMPOSE), "config"],
        cwd=REPO,
        env={**env, **SECRETS, "OUTPOST_API_TOKEN": "api-t0ken"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert services["gateway"]["environment"]["OUTPOST_API_TOKEN"] == "api-t0ken"
    prometheus = services["prometheus"]
    assert prometheus["environment"]["OUTPOST_API_TOKEN"] == "api-t0ken"
    scrape = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text())
    token_file = scrape["scrape_configs"][0]["authorization"]["credentials_file"]
    assert f"> {token_file}" in " ".join(prometheus["command"])


def test_stack_has_broker_database_gateway_and_simulator() -> None:
    services = compose()["services"]
    assert services["mosquitto"]["image"] == "eclipse-mosquitto:2"
    assert services["influxdb"]["image"] == "influxdb:2"
    for name in ("gateway", "simulator"):  # one image, built from the Dockerfile
        assert services[name]["build"] == "."
        assert services[name]["image"] == "outpost:latest"
    assert services["gateway"]["command"][:3] == ["run", "-c", "/etc/outpost/outpost.yaml"]
    assert services["simulator"]["command"][0] == "simulate"
    assert "--host" in services["simulator"]["command"]
    for name in ("mosquitto", "influxdb"):
        assert services[name]["healthcheck"]["test"]
    assert services["gateway"]["depends_on"]["influxdb"]["condition"] == "service_healthy"
    assert services["simulator"]["depends_on"]["mosquitto"]["condition"] == "service_healthy"


def test_influxdb_is_initialised_from_the_environment_with_defaults() -> None:
    env = compose()["services"]["influxdb"]["environment"]
    assert env["DOCKER_INFLUXDB_INIT_MODE"] == "setup"
    for key in ("USERNAME", "PASSWORD", "ORG", "BUCKET", "ADMIN_TOKEN"):
        assert env[f"DOCKER_INFLUXDB_INIT_{key}"].startswith("${"), key
    for key in ("USERNAME", "ORG", "BUCKET"):
        assert ":-" in env[f"DOCKER_INFLUXDB_INIT_{key}"], key
    for key in ("PASSWORD", "ADMIN_TOKEN"):  # secrets: no default, compose refuses without
        assert ":?" in env[f"DOCKER_INFLUXDB_INIT_{key}"], key


def test_mounted_files_exist() -> None:
    for service in compose()["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (REPO / source).is_file(), source


def test_gateway_config_is_valid_and_points_at_the_compose_services() -> None:
    loaded = load_config(
        str(REPO / "deploy/compose/outpost.yaml"),
        environ={"INFLUX_TOKEN": "test-token", "OUTPOST_API_TOKEN": "api-token"},
    )
    config = loaded.config
    assert config.mqtt.host == "mosquitto"
    # listening on every interface of the container: reading needs the token, and
    # Prometheus reaches it by the service's name
    assert config.http.token is not None and config.http.reads_need_token
    assert "gateway" in config.http.allowed_hosts
    assert config.influx.url == "http://influxdb:8086"
    assert config.influx.api == "v2"
    assert (config.influx.org, config.influx.bucket) == ("outpost", "sensors")
    volumes = compose()["services"]["gateway"]["volumes"]
    assert any(v.split(":")[1] == config.state_dir for v in volumes), "state_dir not on a volume"


def test_broker_config_is_sized_for_acknowledge_after_commit() -> None:
    lines = (REPO / "deploy/compose/mosquitto.conf").read_text().splitlines()
    settings = dict(line.split(None, 1) for line in lines if line and not line.startswith("#"))
    assert settings["listener"] == "1883"
    assert settings["persistence"] == "true"
    assert int(settings["max_inflight_messages"]) >= 5000  # influx.batch_size
    assert int(settings["max_queued_messages"]) > 1000


def test_image_runs_outpost_as_a_non_root_user() -> None:
    lines = [line.split() for line in (REPO / "Dockerfile").read_text().splitlines() if line]
    instructions = [(words[0], " ".join(words[1:])) for words in lines if words[0].isupper()]
    assert instructions[0] == ("FROM", "python:3.11-slim")
    users = [arg for op, arg in instructions if op == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert ("ENTRYPOINT", '["outpost"]') in instructions
