"""Connecting: mutual TLS with a password against the locked-down broker of
tests/security, the broker's certificate verified, and every failed attempt logged with
its reason (refused, DNS, TLS, the CONNACK's reason code) once per backoff step."""

from __future__ import annotations

import asyncio
import logging
import re
from types import SimpleNamespace

import pytest

from tests.mqtt.conftest import mqtt_config, running, until
from tests.security.conftest import locked_broker
from tests.security.mqtt import Peer
from tests.services import Mosquitto, free_port


def tls_config(port: int, pki: SimpleNamespace, passwords: dict[str, str], *, ca: object = None,
               host: str = "localhost", **extra: object):  # fmt: skip
    tls = {"ca": str(ca or pki.main_ca.crt), "cert": str(pki.gateway.crt),
           "key": str(pki.gateway.key), **extra}  # fmt: skip
    return mqtt_config(port, host=host, username="outpost", password=passwords["outpost"],
                       tls=tls, reconnect_min="100ms", reconnect_max="400ms")  # fmt: skip


def attempts_logged(caplog: pytest.LogCaptureFixture, words: str) -> list[int]:
    return [int(m) for m in re.findall(rf"{re.escape(words)}.*; attempt (\d+) failed", caplog.text)]


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])  # both in the certificate
async def test_mutual_tls_with_a_password_receives_what_a_device_publishes(
    secure_broker: Mosquitto, pki, passwords, host
):
    cfg = tls_config(secure_broker.tls_port, pki, passwords, host=host)
    async with running(cfg, [("sensors/#", 1)]) as (source, got):
        assert await asyncio.to_thread(source.wait_connected, 10)
        await asyncio.sleep(0.3)
        with Peer(secure_broker.port, "gh-1", passwords["gh-1"]) as device:
            await asyncio.to_thread(device.publish, "sensors/gh-1/temperature", "21.5")
        await until(lambda: got, what="the reading")
        assert got[0][:2] == ("sensors/gh-1/temperature", b"21.5")


async def test_a_broker_certificate_from_another_ca_is_refused_and_logged(
    secure_broker: Mosquitto, pki, passwords, caplog
):
    cfg = tls_config(secure_broker.tls_port, pki, passwords, ca=pki.other_ca.crt)
    async with running(cfg) as (source, _):
        await until(lambda: len(attempts_logged(caplog, "not trusted")) >= 2, what="two lines")
        assert not source.connected
    # Mosquitto sends its chain, ending in a CA the gateway was not told to trust.
    assert "not trusted: self-signed certificate in certificate chain" in caplog.text
    assert "is mqtt.tls.ca the CA that signed the broker's certificate?" in caplog.text


async def test_a_broker_certificate_for_another_host_is_refused_unless_insecure(
    pki, passwords, tmp_path, caplog
):
    with locked_broker(tmp_path, passwords, pki.main_ca.crt, pki.broker_elsewhere.crt,
                       pki.broker_elsewhere.key) as broker:  # fmt: skip
        cfg = tls_config(broker.tls_port, pki, passwords)
        async with running(cfg) as (source, _):
            await until(lambda: attempts_logged(caplog, "not trusted"), what="the refusal")
            assert not source.connected
        assert "Hostname mismatch" in caplog.text
        assert "mqtt.host 'localhost' must be a name the certificate holds" in caplog.text
        insecure = tls_config(broker.tls_port, pki, passwords, insecure=True)
        async with running(insecure) as (source, _):
            assert await asyncio.to_thread(source.wait_connected, 10)
    assert "TLS hostname verification is OFF" in caplog.text


async def test_a_refused_login_is_logged_with_the_connack_reason_code(
    secure_broker: Mosquitto, passwords, caplog
):
    cfg = mqtt_config(secure_broker.port, username="outpost", password="wrong",
                      reconnect_min="100ms", reconnect_max="400ms")  # fmt: skip
    async with running(cfg) as (source, _):
        await until(lambda: attempts_logged(caplog, "refused"), what="the refusal")
        assert not source.connected
    assert (
        "the broker refused the login 'outpost': Not authorized (CONNACK reason code 135)"
        in caplog.text
    )
    assert "wrong" not in caplog.text.replace("wrong password", "")


@pytest.mark.parametrize(
    ("host", "words"),
    [("127.0.0.1", "connection refused (is the broker running and listening on port"),
     ("no-such-broker.invalid", "cannot resolve 'no-such-broker.invalid' (DNS: ")],
)  # fmt: skip
async def test_failed_attempts_are_logged_with_their_reason_once_per_backoff_step(
    host, words, caplog
):
    caplog.set_level(logging.INFO, logger="outpost.mqtt")
    cfg = mqtt_config(free_port(), host=host, reconnect_min="100ms", reconnect_max="400ms")
    async with running(cfg) as (source, _):
        # Waits of at most 0.1, 0.2, 0.4, 0.4 … s: a dozen attempts in 3 s. The waits
        # after attempts 1 and 2 are new steps, the later ones all the 0.4 s cap.
        await asyncio.sleep(3.0)
        assert not source.connected
        assert source.health().failures >= 6
    assert attempts_logged(caplog, words) == [1, 2]
