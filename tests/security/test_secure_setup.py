"""scripts/secure-setup.sh (`make secure`): what it makes works, only its owner reads the
secrets, no password is ever in a process's arguments, and reserved logins are refused."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import threading
from pathlib import Path

import pytest

from gateway.config.schema import MqttConfig
from tests.security.conftest import ACL, REPO
from tests.security.mqtt import Peer, try_connect
from tests.services import Mosquitto

SCRIPT = REPO / "scripts" / "secure-setup.sh"


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=120,
                          check=False, env=env)


class ArgvSampler(threading.Thread):
    """What ``ps -ef`` shows every local user: each process's arguments, read from
    ``/proc/PID/cmdline`` again and again until stopped."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.seen: set[bytes] = set()
        self.rounds = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            for pid in os.listdir("/proc"):
                if pid.isdigit():
                    try:
                        with open(f"/proc/{pid}/cmdline", "rb") as f:
                            self.seen.add(f.read())
                    except OSError:
                        continue  # the process ended meanwhile
            self.rounds += 1

    def stop(self) -> set[bytes]:
        self._stop_event.set()
        self.join()
        return self.seen


# The tools the script runs, each held 0.2 s before it starts, so the sampler (a round
# of /proc takes a few ms) sees the arguments of every single call.
SLOWED = ("mosquitto_passwd", "openssl", "cat", "cp", "chmod", "mkdir", "rm", "tr", "cut",
          "sed", "sort")


def _slowed_path(folder: Path) -> str:
    folder.mkdir()
    for tool in SLOWED:
        real = subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True,
                              text=True, check=True).stdout.strip()
        shim = folder / tool
        shim.write_text(f'#!/bin/sh\nsleep 0.2\nexec {real} "$@"\n')
        shim.chmod(0o755)
    return f"{folder}:{os.environ['PATH']}"


def test_no_password_is_ever_in_a_process_argument_list(tmp_path) -> None:
    out = tmp_path / "secure"
    env = {**os.environ, "PATH": _slowed_path(tmp_path / "bin")}
    sampler = ArgvSampler()
    sampler.start()
    try:
        result = _run("--out", str(out), "--host", "localhost", "--devices", "3", env=env)
    finally:
        seen = sampler.stop()
    assert result.returncode == 0, result.stderr
    assert sampler.rounds > 100, sampler.rounds
    assert any(b"mosquitto_passwd" in argv for argv in seen)  # the sampler saw the tool run
    secrets = [f.read_bytes().strip() for f in (out / "outpost/mqtt.pass",
                                                 out / "outpost/api.token",
                                                 *sorted((out / "devices").glob("*.pass")))]
    assert len(secrets) == 5 and all(len(s) >= 24 for s in secrets)
    leaks = [argv.replace(b"\0", b" ").decode(errors="replace")
             for argv in seen for secret in secrets if secret in argv]
    assert leaks == []


def _acl_users() -> list[str]:
    return re.findall(r"^user\s+(\S+)", ACL.read_text(), re.MULTILINE)


@pytest.mark.parametrize("device", [*_acl_users(), "Outpost"])
def test_reserved_logins_are_refused_as_device_ids(tmp_path, device: str) -> None:
    assert {"outpost", "simulator"} <= set(_acl_users())
    out = tmp_path / "secure"
    result = _run("--out", str(out), "--device", "gh-1", "--device", device)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"device id '{device}' is reserved" in result.stderr
    assert not out.exists()  # refused before anything was written


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
