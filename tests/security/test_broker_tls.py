"""The gateway's broker connection: mutual TLS, the hostname check, refused logins.

Connections go through :func:`gateway.mqtt.client.make_client`, the factory both of
the gateway's MQTT connections use, against a real Mosquitto with
``require_certificate``, a password file and the shipped ACL.
"""

from __future__ import annotations

import logging
import time
from types import SimpleNamespace

import pytest

from gateway.config.schema import MqttConfig, TlsConfig
from tests.security.conftest import locked_broker
from tests.security.mqtt import try_connect
from tests.services import Mosquitto


def gateway_mqtt(port: int, passwords: dict[str, str], ca: object, cert: object,
                 host: str = "localhost", **tls: object) -> MqttConfig:
    files = {"ca": str(ca), "cert": str(cert.crt), "key": str(cert.key)}  # type: ignore[attr-defined]
    return MqttConfig.model_validate({
        "host": host, "port": port, "username": "outpost", "password": passwords["outpost"],
        "tls": TlsConfig.model_validate({**files, **tls})})


def test_gateway_connects_with_the_right_ca_client_certificate_and_password(
        secure_broker: Mosquitto, pki: SimpleNamespace, passwords: dict[str, str]) -> None:
    for host in ("localhost", "127.0.0.1"):  # both are in the broker certificate's SAN
        cfg = gateway_mqtt(secure_broker.tls_port, passwords, pki.main_ca.crt, pki.gateway,
                           host=host)
        assert try_connect(cfg) == "connected"


def test_hostname_is_checked_by_default(pki: SimpleNamespace) -> None:
    # paho's tls_set() turns check_hostname on; nothing in make_client may turn it off.
    cfg = MqttConfig.model_validate({"tls": {"ca": str(pki.main_ca.crt)}})
    from gateway.mqtt.client import make_client

    client = make_client(cfg, "probe")
    context = client._ssl_context
    assert context is not None and context.check_hostname
    assert not client._tls_insecure


def test_gateway_refuses_a_broker_certificate_from_another_ca(
        secure_broker: Mosquitto, pki: SimpleNamespace, passwords: dict[str, str]) -> None:
    cfg = gateway_mqtt(secure_broker.tls_port, passwords, pki.other_ca.crt, pki.gateway)
    outcome = try_connect(cfg)
    assert outcome.startswith("tls:") and "certificate verify failed" in outcome, outcome


def test_gateway_refuses_a_broker_whose_certificate_names_another_host(
        pki: SimpleNamespace, passwords: dict[str, str], tmp_path, caplog) -> None:
    with locked_broker(tmp_path, passwords, pki.main_ca.crt, pki.broker_elsewhere.crt,
                       pki.broker_elsewhere.key) as broker:
        cfg = gateway_mqtt(broker.tls_port, passwords, pki.main_ca.crt, pki.gateway)
        outcome = try_connect(cfg)
        assert outcome.startswith("tls:") and "Hostname mismatch" in outcome, outcome
        # The escape hatch works, and says loudly what it costs.
        insecure = gateway_mqtt(broker.tls_port, passwords, pki.main_ca.crt, pki.gateway,
                                insecure=True)
        with caplog.at_level(logging.WARNING, logger="outpost.mqtt"):
            assert try_connect(insecure) == "connected"
        assert "TLS hostname verification is OFF" in caplog.text


def test_gateway_refuses_an_expired_broker_certificate(
        pki: SimpleNamespace, passwords: dict[str, str], tmp_path) -> None:
    with locked_broker(tmp_path, passwords, pki.main_ca.crt, pki.broker_expired.crt,
                       pki.broker_expired.key) as broker:
        cfg = gateway_mqtt(broker.tls_port, passwords, pki.main_ca.crt, pki.gateway)
        outcome = try_connect(cfg)
        assert outcome.startswith("tls:") and "certificate has expired" in outcome, outcome


@pytest.mark.parametrize("client_cert", ["gateway_expired", "gateway_other_ca", None])
def test_broker_refuses_a_client_without_a_valid_certificate(
        secure_broker: Mosquitto, pki: SimpleNamespace, passwords: dict[str, str],
        client_cert: str | None) -> None:
    if client_cert is None:
        cfg = MqttConfig.model_validate({
            "host": "localhost", "port": secure_broker.tls_port, "username": "outpost",
            "password": passwords["outpost"], "tls": {"ca": str(pki.main_ca.crt)}})
    else:
        cfg = gateway_mqtt(secure_broker.tls_port, passwords, pki.main_ca.crt,
                           getattr(pki, client_cert))
    seen = len(secure_broker.log_path.read_bytes())
    outcome = try_connect(cfg)
    assert outcome != "connected" and not outcome.startswith("refused"), outcome
    expected = "peer did not return a certificate" if client_cert is None else \
        "certificate verify failed"
    # The client may see the connection end before the broker has written its line.
    deadline = time.monotonic() + 5
    while expected not in (broker_says := secure_broker.log_path.read_bytes()[seen:].decode()):
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert expected in broker_says, broker_says


@pytest.mark.parametrize("username, password", [
    (None, None),            # anonymous
    ("outpost", "wrong"),    # a known user with a wrong password
    ("nobody", "whatever"),  # an unknown user
])
def test_broker_refuses_anonymous_and_wrong_logins(
        secure_broker: Mosquitto, pki: SimpleNamespace, passwords: dict[str, str],
        username: str | None, password: str | None) -> None:
    plain = MqttConfig.model_validate({"host": "127.0.0.1", "port": secure_broker.port,
                                       "username": username, "password": password})
    assert try_connect(plain).startswith("refused: Not authorized"), username
    # Over mutual TLS too: a valid certificate does not replace the password.
    tls = gateway_mqtt(secure_broker.tls_port, passwords, pki.main_ca.crt, pki.gateway)
    tls = tls.model_copy(update={"username": username, "password": plain.password})
    assert try_connect(tls).startswith("refused: Not authorized"), username
