"""Secrets set in the config appear nowhere: logs, API answers, /metrics, CLI output, state.

The gateway runs as a real process (tests/gateway/harness.py) against a Mosquitto with
mutual TLS, a password file and the shipped ACL, and an influxd with authentication;
its secrets are random strings written inline in outpost.yaml, so any leak is found by
a plain substring search. Failure paths (a refused MQTT password, refused InfluxDB
credentials, a webhook that cannot be reached) are part of the run.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.gateway.harness import GatewayProcess, write_config
from tests.security.mqtt import Peer
from tests.services import InfluxDB, Mosquitto, free_port, http_request

RULES = """
rules:
  - name: hot
    match: {metric: temperature}
    when: value > 30
    severity: critical
    actions:
      - command: {device: fan-1, set: {speed: 100}}
"""
INFLUX_USER = "outpost"


def _secret(kind: str) -> str:
    return f"{kind}{secrets.token_hex(12)}"


@pytest.fixture(scope="module")
def influx_auth() -> Iterator[InfluxDB]:
    with InfluxDB(auth_enabled=True, username=INFLUX_USER,
                  password=_secret("influx-admin-")) as server:
        yield server


def _config(tmp_path: Path, broker: Mosquitto, pki: SimpleNamespace, influx: InfluxDB, *,
            mqtt_password: str, influx_password: str | None = None,
            influx_url: str | None = None, tls: bool = True, **extra: object) -> Path:
    (tmp_path / "rules.yaml").write_text(RULES)
    mqtt: dict[str, object] = {"host": "localhost", "port": broker.port,
                               "client_id": f"sec-gw-{secrets.token_hex(4)}",
                               "username": "outpost", "password": mqtt_password,
                               "reconnect_min": "1s", "reconnect_max": "1s"}
    if tls:
        mqtt["port"] = broker.tls_port
        mqtt["tls"] = {"ca": str(pki.main_ca.crt), "cert": str(pki.gateway.crt),
                       "key": str(pki.gateway.key)}
    influx_cfg: dict[str, object] = {"url": influx_url or influx.url, "database": "outpost",
                                     "flush_interval": "200ms"}
    if influx_password is not None:
        influx_cfg.update(username=INFLUX_USER, password=influx_password)
    config = {"mqtt": mqtt, "influx": influx_cfg, "rules": ["rules.yaml"],
              "devices": {"fan-1": {"commands": {"speed": {"type": "int"}},
                                    "ack_timeout": "30s", "retries": 0}},
              "http": {"listen": f"127.0.0.1:{free_port()}"}, "state_dir": "./var", **extra}
    return write_config(tmp_path / "outpost.yaml", config)


def _publish_reading(broker: Mosquitto, passwords: dict[str, str], value: str = "35") -> None:
    with Peer(broker.port, "gh-1", passwords["gh-1"]) as device:
        assert device.connected, device.refused
        device.publish("sensors/gh-1/temperature", value)


def _outpost(*args: str, cwd: Path) -> str:
    result = subprocess.run([sys.executable, "-m", "gateway", *args], cwd=cwd,
                            capture_output=True, text=True, timeout=30, check=False)
    return result.stdout + result.stderr


def _assert_nowhere(secret_list: list[str], texts: dict[str, str | bytes]) -> None:
    for where, text in texts.items():
        data = text.encode() if isinstance(text, str) else text
        for secret in secret_list:
            assert secret.encode() not in data, f"a secret leaked into {where}"


def test_secrets_in_the_config_appear_nowhere(
        tmp_path, secure_broker, pki, passwords, influx_auth) -> None:
    path_key, query_key = _secret("hookpath"), _secret("hookkey")
    webhook = f"http://127.0.0.1:{free_port()}/hooks/{path_key}?key={query_key}"
    api_token = _secret("api-token-")
    secret_list = [passwords["outpost"], influx_auth.password, api_token, webhook, path_key,
                   query_key]
    config = _config(
        tmp_path, secure_broker, pki, influx_auth, mqtt_password=passwords["outpost"],
        influx_password=influx_auth.password,
        notify={"ops": {"webhook": webhook, "timeout": "1s", "retries": 0}},
    )
    data = json.loads(json.dumps(__import__("yaml").safe_load(config.read_text())))
    data["http"]["token"] = api_token
    write_config(config, data)
    base = f"http://{data['http']['listen']}"
    texts: dict[str, str | bytes] = {}
    with GatewayProcess(config) as gateway:
        _publish_reading(secure_broker, passwords)
        influx_auth.wait_for_count("outpost", 1, measurement="temperature")
        gateway.wait_log("notifier ops: giving up", timeout=10)
        for path in ("/", "/healthz", "/readyz", "/metrics", "/api/v1/alerts",
                     "/api/v1/rules", "/api/v1/events", "/api/v1/commands",
                     "/api/v1/silences", "/api/v1/devices", "/api/v1/readings"):
            status, headers, body = http_request("GET", base + path)
            texts[f"GET {path} ({status})"] = json.dumps(headers).encode() + body
        # Mutations: 401 without the token or with a wrong one, whatever the endpoint.
        mutations = [("POST", "/api/v1/commands", {"device": "fan-1", "set": {"speed": 1}}),
                     ("POST", "/api/v1/silences", {"for": "1h"}),
                     ("DELETE", "/api/v1/silences/1", None),
                     ("POST", "/api/v1/rules/reload", {})]
        for method, path, body in mutations:
            payload = None if body is None else json.dumps(body).encode()
            for headers in ({}, {"Authorization": "Bearer wrong-token"},
                            {"Authorization": f"Basic {api_token}"},
                            {"Authorization": f"Bearer {api_token}x"}):
                status, _, answer = http_request(method, base + path, payload, headers)
                assert status == 401, (method, path, headers, answer)
                texts[f"{method} {path} {headers}"] = answer
        status, _, answer = http_request(
            "POST", base + "/api/v1/silences", json.dumps({"for": "1h"}).encode(),
            {"Authorization": f"Bearer {api_token}"})
        assert status == 201, answer
        texts["POST /api/v1/silences with the token"] = answer
        texts["outpost config check"] = _outpost("config", "check", "-c", str(config),
                                                 cwd=tmp_path)
        texts["outpost events"] = _outpost("events", "-c", str(config), "--json", cwd=tmp_path)
    texts["gateway log"] = gateway.log()
    for file in (tmp_path / "var").rglob("*"):
        if file.is_file():
            texts[f"state file {file.name}"] = file.read_bytes()
    assert "TLS hostname verification is OFF" not in texts["gateway log"]
    assert b"outpost_" in texts["GET /metrics (200)"]  # the scrape did happen
    _assert_nowhere(secret_list, texts)


def test_refused_credentials_leave_no_secret_in_the_logs(
        tmp_path, secure_broker, pki, passwords, influx_auth) -> None:
    wrong_mqtt = _secret("wrong-mqtt-")
    config = _config(tmp_path, secure_broker, pki, influx_auth, mqtt_password=wrong_mqtt,
                     influx_password=influx_auth.password)
    gateway = GatewayProcess(config).start(wait_for="broker refused")
    gateway.stop()
    assert "Not authorized" in gateway.log()
    _assert_nowhere([wrong_mqtt, influx_auth.password], {"log, MQTT refused": gateway.log()})

    # InfluxDB refuses: a wrong password, then credentials in the URL (user:password@).
    wrong_influx, wrong_url_password = _secret("wrong-influx-"), _secret("wrong-url-")
    host_port = influx_auth.url.removeprefix("http://")
    for name, options in (
            ("password", {"influx_password": wrong_influx}),
            ("url", {"influx_url": f"http://{INFLUX_USER}:{wrong_url_password}@{host_port}"})):
        folder = tmp_path / name
        folder.mkdir()
        config = _config(folder, secure_broker, pki, influx_auth,
                         mqtt_password=passwords["outpost"], **options)
        started = time.monotonic()
        with GatewayProcess(config) as gateway:
            _publish_reading(secure_broker, passwords)
            gateway.wait_log("InfluxDB write failed (auth)", timeout=10)
            check = _outpost("config", "check", "-c", str(config), cwd=folder)
        assert time.monotonic() - started < 20
        _assert_nowhere([wrong_influx, wrong_url_password, passwords["outpost"]],
                        {f"log, InfluxDB refused ({name})": gateway.log(),
                         f"config check ({name})": check})
