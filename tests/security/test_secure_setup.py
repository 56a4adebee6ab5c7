"""scripts/secure-setup.sh (`make secure`): what it makes works, and only its owner reads
the secrets."""

from __future__ import annotations

import stat
import subprocess

from gateway.config.schema import MqttConfig
from tests.security.conftest import ACL, REPO
from tests.security.mqtt import Peer, try_connect
from tests.services import Mosquitto

SCRIPT = REPO / "scripts" / "secure-setup.sh"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=60,
                          check=False)


def test_secure_setup_makes_a_working_locked_down_install(tmp_path) -> None:
    out = tmp_path / "secure"
    result = _run("--out", str(out), "--host", "localhost", "--host", "127.0.0.1",
                  "--devices", "2", "--prefix", "gh-")
    assert result.returncode == 0, result.stderr
    assert "password_file /etc/mosquitto/outpost.passwd" in result.stdout
    assert "password_file: /etc/outpost/mqtt.pass" in result.stdout

    secret_files = [out / "ca/ca.key", out / "mosquitto/broker.key", out / "outpost/gateway.key",
                    out / "outpost/mqtt.pass", out / "outpost/api.token",
                    out / "mosquitto/outpost.passwd", out / "devices/gh-1.pass",
                    out / "devices/gh-2.pass"]
    for file in secret_files:
        mode = stat.S_IMODE(file.stat().st_mode)
        assert mode == 0o600, (file, oct(mode))
    for folder in (out, *(p for p in out.iterdir() if p.is_dir())):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    gateway_password = (out / "outpost/mqtt.pass").read_text().strip()
    device_password = (out / "devices/gh-1.pass").read_text().strip()
    assert len(gateway_password) >= 24 and gateway_password != device_password
    users = [line.split(":")[0] for line in (out / "mosquitto/outpost.passwd").read_text()
             .splitlines()]
    assert users == ["outpost", "gh-1", "gh-2"]
    assert (out / "mosquitto/outpost.acl").read_text() == ACL.read_text()
    # A second run must not silently replace a CA that devices may already trust.
    again = _run("--out", str(out))
    assert again.returncode != 0 and "--force" in again.stderr

    tls = {"cafile": out / "mosquitto/ca.crt", "certfile": out / "mosquitto/broker.crt",
           "keyfile": out / "mosquitto/broker.key", "require_certificate": True}
    with Mosquitto(allow_anonymous=False, password_file=out / "mosquitto/outpost.passwd",
                   acl_file=out / "mosquitto/outpost.acl", tls=tls) as broker:
        cfg = MqttConfig.model_validate({
            "host": "localhost", "port": broker.tls_port, "username": "outpost",
            "password": gateway_password,
            "tls": {"ca": str(out / "outpost/ca.crt"), "cert": str(out / "outpost/gateway.crt"),
                    "key": str(out / "outpost/gateway.key")}})
        assert try_connect(cfg) == "connected"
        with Peer(broker.port, "gh-1", device_password) as device:
            assert device.connected, device.refused
        with Peer(broker.port, "gh-1", gateway_password) as impostor:
            assert not impostor.connected
