"""docker-compose.yml as an operator starts it: nothing published beyond this machine
unless asked for, and no secret anyone could know.

Read through ``docker-compose config`` (the file as compose resolves it; no Docker engine
needed), with a clean environment and an env file of the test's own, so a developer's
``.env`` cannot change the outcome.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.security.conftest import REPO

COMPOSE = REPO / "docker-compose.yml"
ENV_SCRIPT = REPO / "scripts" / "compose-env.sh"
SECRET_VARIABLES = ("INFLUX_TOKEN", "INFLUX_PASSWORD", "MQTT_GATEWAY_PASSWORD",
                    "MQTT_SIMULATOR_PASSWORD", "GRAFANA_PASSWORD", "OUTPOST_API_TOKEN")
SECRET_NAME = re.compile(r"PASSWORD|TOKEN|SECRET|_KEY$")
WEB = ("influxdb", "gateway", "grafana", "prometheus")


def _compose(env_file: Path, **env: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("docker-compose")
    assert exe, "docker-compose not installed (apt-get install docker-compose)"
    return subprocess.run(
        [exe, "--env-file", str(env_file), "-f", str(COMPOSE), "config"], cwd=REPO,
        env={"PATH": os.environ["PATH"], **env}, capture_output=True, text=True, timeout=60,
        check=False)


def _services(env_file: Path, **env: str) -> dict[str, Any]:
    result = _compose(env_file, **env)
    assert result.returncode == 0, result.stderr
    services: dict[str, Any] = yaml.safe_load(result.stdout)["services"]
    return services


def _random_secrets() -> dict[str, str]:
    return {name: f"{name.lower()}-{secrets.token_hex(12)}" for name in SECRET_VARIABLES}


def _bindings(service: dict[str, Any]) -> list[str]:
    """Host addresses of a service's published ports ("" = every interface)."""
    found = []
    for port in service.get("ports", []):
        if isinstance(port, dict):  # long syntax
            found.append(port.get("host_ip", ""))
        else:  # "HOST_IP:PUBLISHED:TARGET/proto", "PUBLISHED:TARGET" or "TARGET"
            parts = str(port).split(":")
            found.append(parts[0] if len(parts) == 3 else "")
    return found


@pytest.fixture
def empty_env_file(tmp_path: Path) -> Path:
    path = tmp_path / "empty.env"
    path.write_text("")
    return path


@pytest.mark.parametrize("missing", SECRET_VARIABLES)
def test_compose_refuses_to_start_without_each_secret(empty_env_file: Path,
                                                      missing: str) -> None:
    env = _random_secrets()
    del env[missing]
    result = _compose(empty_env_file, **env)
    assert result.returncode != 0, f"compose starts with a default {missing}"
    assert f"set {missing} in .env" in result.stderr, result.stderr


def test_compose_publishes_every_port_on_loopback_unless_told(empty_env_file: Path) -> None:
    services = _services(empty_env_file, **_random_secrets())
    published = {name: _bindings(s) for name, s in services.items() if s.get("ports")}
    assert set(published) >= {"mosquitto", *WEB}, published
    for name, hosts in published.items():
        assert hosts and all(h == "127.0.0.1" for h in hosts), (name, hosts)
    # The operator opens the broker to the LAN, and the web ports elsewhere, on purpose.
    services = _services(empty_env_file, **_random_secrets(), MQTT_BIND="0.0.0.0",
                         OUTPOST_BIND="192.0.2.10")
    assert _bindings(services["mosquitto"]) == ["0.0.0.0"]
    for name in WEB:
        assert set(_bindings(services[name])) == {"192.0.2.10"}, name


def test_compose_holds_no_secret_but_the_operators(empty_env_file: Path) -> None:
    given = _random_secrets()
    services = _services(empty_env_file, **given)
    seen = 0
    for name, service in services.items():
        for key, value in (service.get("environment") or {}).items():
            if SECRET_NAME.search(key):
                assert value in given.values(), f"{name}: {key} is not one the operator set"
                seen += 1
        command = " ".join(map(str, service.get("healthcheck", {}).get("test") or []))
        assert not any(v in command for v in given.values()), f"{name}: a secret in argv"
    assert seen >= 8  # the broker's two, InfluxDB's two, the gateway's two, and so on
    start = (REPO / "deploy/compose/mosquitto-start.sh").read_text()
    assert "mosquitto_passwd -b" not in start  # it would put each password in argv


def test_compose_env_script_writes_private_random_secrets(tmp_path: Path) -> None:
    env_file = tmp_path / "compose.env"
    result = subprocess.run([str(ENV_SCRIPT), "--out", str(env_file)], capture_output=True,
                            text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    values = dict(line.split("=", 1) for line in env_file.read_text().splitlines()
                  if line and not line.startswith("#"))
    assert set(values) == set(SECRET_VARIABLES)
    assert len(set(values.values())) == len(values)
    assert all(len(v) >= 24 for v in values.values()), values
    services = _services(env_file)  # compose starts with the file alone
    assert services["influxdb"]["environment"]["DOCKER_INFLUXDB_INIT_ADMIN_TOKEN"] == \
        values["INFLUX_TOKEN"]
    again = subprocess.run([str(ENV_SCRIPT), "--out", str(env_file)], capture_output=True,
                           text=True, timeout=30, check=False)
    assert again.returncode != 0 and "--force" in again.stderr
    assert dict(line.split("=", 1) for line in env_file.read_text().splitlines()
                if line and not line.startswith("#")) == values
