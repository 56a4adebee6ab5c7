"""Broker connection: credentials, TLS, and surviving a broker restart."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from tests.gateway.harness import Device, GatewayProcess, gateway_config, write_config
from tests.services import Mosquitto


def test_gateway_reconnects_and_resubscribes_after_broker_restart(
    tmp_path, mosquitto, influxdb, influx_db
):
    config = gateway_config(mosquitto.port, influxdb.url, influx_db)
    config["mqtt"].update({"reconnect_min": "1s", "reconnect_max": "2s"})
    with GatewayProcess(write_config(tmp_path / "outpost.yaml", config)) as gateway:
        with Device(mosquitto.port) as device:
            device.publish("sensors/gh-1/before", "1")
        influxdb.wait_for_count(influx_db, 1, measurement="before")
        mosquitto.restart()
        gateway.wait_log("lost the broker connection", timeout=10)
        deadline = time.monotonic() + 20
        while gateway.log().count("connected to 127.0.0.1") < 2:
            assert time.monotonic() < deadline, gateway.log()
            time.sleep(0.1)
        with Device(mosquitto.port) as device:
            device.publish("sensors/gh-1/after", "2")
        influxdb.wait_for_count(influx_db, 1, measurement="after", timeout=10)


def test_username_and_password_from_a_secret_file(tmp_path, influxdb, influx_db):
    passwords = Mosquitto.write_password_file(
        tmp_path / "passwd", {"gw": "gw-secret", "dev": "dev-secret"}
    )
    with Mosquitto(allow_anonymous=False, password_file=passwords) as broker:
        (tmp_path / "mqtt.pass").write_text("gw-secret\n")
        config = gateway_config(broker.port, influxdb.url, influx_db)
        config["mqtt"].update({"username": "gw", "password_file": "mqtt.pass"})
        with GatewayProcess(write_config(tmp_path / "outpost.yaml", config)) as gateway:
            import paho.mqtt.client as mqtt

            device = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
            device.username_pw_set("dev", "dev-secret")
            device.connect("127.0.0.1", broker.port)
            device.loop_start()
            device.publish("sensors/gh-1/temperature", "21.5", qos=1).wait_for_publish(5)
            device.loop_stop()
            influxdb.wait_for_count(influx_db, 1)
            assert "gw-secret" not in gateway.log()


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certificates(folder: Path) -> None:
    """A CA, a broker certificate for 127.0.0.1/localhost, and a client certificate."""
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=Outpost test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        cwd=folder,
    )
    (folder / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    for name, ext in (("broker", True), ("client", False)):
        _openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            f"/CN={name}",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
            cwd=folder,
        )
        extra = ["-extfile", "san.ext"] if ext else []
        _openssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            f"{name}.crt",
            *extra,
            cwd=folder,
        )


def test_tls_with_ca_and_client_certificate(tmp_path, influxdb, influx_db):
    make_certificates(tmp_path)
    tls = {
        "cafile": tmp_path / "ca.crt",
        "certfile": tmp_path / "broker.crt",
        "keyfile": tmp_path / "broker.key",
        "require_certificate": True,
    }
    with Mosquitto(tls=tls) as broker:
        config = gateway_config(broker.tls_port, influxdb.url, influx_db)
        config["mqtt"].update(
            {
                "host": "localhost",
                "tls": {"ca": "ca.crt", "cert": "client.crt", "key": "client.key"},
            }
        )
        with (
            GatewayProcess(write_config(tmp_path / "outpost.yaml", config)),
            Device(broker.port) as device,
        ):  # devices use the plain listener here
            device.publish("sensors/gh-1/temperature", "21.5")
            influxdb.wait_for_count(influx_db, 1)
