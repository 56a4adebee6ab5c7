"""A gateway that cannot reach its broker says why, in the log and in its status.

Each case runs the real gateway process against a real Mosquitto (tests/security
conftest: mutual TLS, logins, the shipped ACL) that it cannot use: the broker is down,
its certificate comes from a CA the gateway does not trust, it refuses the login, or its
name does not resolve. Each failed attempt is logged with its reason within seconds
(then once per backoff step, then at most once a minute), and ``outpost status --json``
shows the broker's state and last error apart from InfluxDB's.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.gateway.harness import Device, GatewayProcess, write_config
from tests.services import InfluxDB, Mosquitto, free_port

FAILURE = re.compile(r"MQTT ingest: cannot connect to the broker at \S+: (.*); attempt (\d+)")


def _config(folder: Path, influx_url: str, **mqtt: Any) -> Path:
    config = {
        "mqtt": {"client_id": f"fail-{secrets.token_hex(4)}", "reconnect_min": "1s",
                 "reconnect_max": "4s", **mqtt},
        "influx": {"url": influx_url, "database": "outpost", "flush_interval": "200ms"},
        "http": {"listen": f"127.0.0.1:{free_port()}"},
        "state_dir": "./var",
    }
    return write_config(folder / "outpost.yaml", config)


def _tls(pki: SimpleNamespace, ca: Path) -> dict[str, str]:
    return {"ca": str(ca), "cert": str(pki.gateway.crt), "key": str(pki.gateway.key)}


def _status(config: Path) -> tuple[int, dict[str, Any]]:
    """``outpost status --json``: its exit code and the gateway's status answer."""
    result = subprocess.run([sys.executable, "-m", "gateway", "status", "--json", "-c",
                             str(config)], capture_output=True, text=True, timeout=30,
                            check=False)
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout)["status"]


def _text_status(config: Path) -> str:
    return subprocess.run([sys.executable, "-m", "gateway", "status", "-c", str(config)],
                          capture_output=True, text=True, timeout=30, check=False).stdout


@contextlib.contextmanager
def _failing(config: Path) -> Iterator[GatewayProcess]:
    """The gateway, started, once it has logged its first failed attempt (within 5 s)."""
    gateway = GatewayProcess(config).start(wait_for=None)
    try:
        gateway.wait_log("MQTT ingest: cannot connect", timeout=5)
        yield gateway
    finally:
        gateway.stop()


def _logged_failures(gateway: GatewayProcess) -> list[tuple[str, int]]:
    return [(m.group(1), int(m.group(2))) for m in FAILURE.finditer(gateway.log())]


def _assert_broker_down(config: Path, reason: str) -> dict[str, Any]:
    code, status = _status(config)
    assert code == 1, status
    broker, influx = status["broker"], status["influx"]
    assert broker["state"] == "down", broker
    assert reason in broker["last_error"], broker
    assert broker["last_error_at"] and broker["failures"] >= 1, broker
    for name in ("ingest", "link"):  # both connections, each with its reason
        assert reason in broker["connections"][name]["last_error"], broker
    # InfluxDB is not blamed: nothing was written, nothing failed there.
    assert influx["state"] == "unknown" and influx["last_error"] is None, influx
    assert status["mqtt_connected"] is False
    return status


def test_broker_down_is_logged_with_its_reason_and_shown_apart_from_influxdb(
        tmp_path, mosquitto: Mosquitto, influxdb: InfluxDB) -> None:
    mosquitto.stop()  # its port, with nobody listening
    config = _config(tmp_path, influxdb.url, host="127.0.0.1", port=mosquitto.port)
    with _failing(config) as gateway:
        assert "connection refused (is the broker running" in gateway.log(), gateway.log()
        _assert_broker_down(config, "connection refused")
        text = _text_status(config)
        assert f"MQTT       NOT CONNECTED to 127.0.0.1:{mosquitto.port}: connection refused" \
            in text, text
        assert "InfluxDB   no write yet" in text, text

        # Attempts at about 0, 3, 7 and 11 s (waits 1+2, 4, 4: reconnect_max 4s): the first
        # two are backoff steps and logged, the next ones repeat the capped step and wait
        # for the minute to pass.
        deadline = time.monotonic() + 20
        while _status(config)[1]["broker"]["failures"] < 4:
            assert time.monotonic() < deadline, gateway.log()
            time.sleep(0.5)
        assert [n for _, n in _logged_failures(gateway)] == [1, 2], gateway.log()

        # Back up: connected, the last error kept for the record.
        mosquitto.start()
        gateway.wait_log("connected to 127.0.0.1", timeout=15)
        deadline = time.monotonic() + 10  # the link connection's own next attempt
        while (status := _status(config)[1])["broker"]["state"] != "up":
            assert time.monotonic() < deadline, status
            time.sleep(0.2)
        code, status = _status(config)
        assert code == 0, status
        assert status["broker"]["state"] == "up" and status["broker"]["failures"] == 0
        assert "connection refused" in status["broker"]["last_error"]


def test_influxdb_down_is_shown_apart_from_a_working_broker(
        tmp_path, mosquitto: Mosquitto) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    config = _config(tmp_path, dead, host="127.0.0.1", port=mosquitto.port)
    with GatewayProcess(config) as gateway, Device(mosquitto.port) as device:
        device.publish("sensors/gh-1/temperature", "21")
        gateway.wait_log("InfluxDB write failed", timeout=10)
        code, status = _status(config)
        assert code == 1, status
        assert status["broker"]["state"] == "up" and status["broker"]["last_error"] is None
        influx = status["influx"]
        assert influx["state"] == "down" and influx["failures"] >= 1, influx
        assert influx["last_error"].startswith("connection: InfluxDB unreachable"), influx
        assert influx["target"] == f"InfluxDB 1.x {dead} database outpost", influx


def test_a_broker_certificate_from_an_unknown_ca_is_logged_with_its_subject(
        tmp_path, secure_broker: Mosquitto, pki: SimpleNamespace,
        passwords: dict[str, str], influxdb: InfluxDB) -> None:
    config = _config(tmp_path, influxdb.url, host="localhost", port=secure_broker.tls_port,
                     username="outpost", password=passwords["outpost"],
                     tls=_tls(pki, pki.other_ca.crt))
    with _failing(config) as gateway:
        reason = _logged_failures(gateway)[0][0]
        # OpenSSL's words depend on the chain the broker sends ("unable to get local issuer
        # certificate" for the leaf alone, "self-signed certificate in certificate chain").
        assert reason.startswith("TLS: the broker's certificate is not trusted: "), reason
        assert "certificate" in reason.split(": ", 2)[2], reason
        assert "(subject CN=broker, issuer CN=Outpost test CA main)" in reason, reason
        assert "is mqtt.tls.ca the CA that signed the broker's certificate?" in reason
        assert " ERROR " in next(line for line in gateway.log().splitlines()
                                 if "MQTT ingest: cannot connect" in line)
        status = _assert_broker_down(config, "subject CN=broker, issuer CN=Outpost test CA main")
        assert status["broker"]["target"] == f"localhost:{secure_broker.tls_port}"


@pytest.mark.parametrize("client_cert, expected", [
    (None, "it wants a client certificate (mqtt.tls.cert and mqtt.tls.key)"),
    ("gateway_other_ca", "it does not accept the gateway's client certificate (mqtt.tls.cert)"),
])
def test_a_client_certificate_the_broker_refuses_is_logged_with_the_tls_alert(
        tmp_path, secure_broker: Mosquitto, pki: SimpleNamespace, passwords: dict[str, str],
        influxdb: InfluxDB, client_cert: str | None, expected: str) -> None:
    # TLS 1.3: the handshake completes on the gateway's side, and the broker's alert comes
    # with the first read, after the CONNECT: the reason is in no exception of the attempt.
    tls: dict[str, str] = {"ca": str(pki.main_ca.crt)}
    if client_cert is not None:
        tls = _tls(pki, pki.main_ca.crt) | {
            "cert": str(getattr(pki, client_cert).crt), "key": str(getattr(pki, client_cert).key)}
    config = _config(tmp_path, influxdb.url, host="localhost", port=secure_broker.tls_port,
                     username="outpost", password=passwords["outpost"], tls=tls)
    with _failing(config) as gateway:
        reason = _logged_failures(gateway)[0][0]
        assert reason.startswith("the broker closed the connection before answering the "
                                 "login: [SSL: "), reason
        assert reason.endswith(expected), reason
        _assert_broker_down(config, expected)


def test_a_refused_login_is_logged_with_the_connack_reason(
        tmp_path, secure_broker: Mosquitto, pki: SimpleNamespace,
        influxdb: InfluxDB) -> None:
    wrong = f"wrong-{secrets.token_hex(8)}"
    config = _config(tmp_path, influxdb.url, host="localhost", port=secure_broker.tls_port,
                     username="outpost", password=wrong, tls=_tls(pki, pki.main_ca.crt))
    with _failing(config) as gateway:
        reason = _logged_failures(gateway)[0][0]
        assert reason == ("the broker refused the login 'outpost': Not authorized "
                          "(CONNACK reason code 135)"), reason
        _assert_broker_down(config, "Not authorized (CONNACK reason code 135)")
    assert wrong not in gateway.log()


def test_a_broker_name_that_does_not_resolve_is_logged_as_dns(
        tmp_path, influxdb: InfluxDB) -> None:
    config = _config(tmp_path, influxdb.url, host="outpost-broker.invalid", port=1883)
    with _failing(config) as gateway:
        reason = _logged_failures(gateway)[0][0]
        assert reason.startswith("cannot resolve 'outpost-broker.invalid' (DNS: "), reason
        _assert_broker_down(config, "cannot resolve 'outpost-broker.invalid'")
