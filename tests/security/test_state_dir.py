"""The state directory against the real gateway process: private files whatever the umask,
no world-writable directory, and one gateway at a time.

``state_dir`` holds the journal (alerts, commands, silences) and the outbox (readings not
yet in InfluxDB). Started from a shell its umask is usually 022, which leaves new files
readable by every local user; a second gateway started by mistake with the same config
used to take over the first one's broker sessions.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.gateway.harness import Device, GatewayProcess, gateway_config, write_config
from tests.services import InfluxDB, Mosquitto, free_port, http_request

RULES = """
rules:
  - name: hot
    match: {metric: temperature}
    when: value > 30
    severity: warning
"""


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def _config(tmp_path: Path, broker: Mosquitto, influx: InfluxDB, database: str) -> Path:
    (tmp_path / "rules.yaml").write_text(RULES)
    config = gateway_config(broker.port, influx.url, database, rules=["rules.yaml"])
    return write_config(tmp_path / "outpost.yaml", config)


def _api(config: Path, path: str) -> dict:
    base = f"http://{yaml.safe_load(config.read_text())['http']['listen']}"
    status, _, body = http_request("GET", base + path)
    assert status == 200, body
    return json.loads(body)


def _wait(what: str, check, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"no {what} after {timeout} s"
        time.sleep(0.05)


def _modes(folder: Path) -> dict[str, str]:
    """Every entry under ``folder`` (itself included) with its permission bits."""
    found = {".": oct(stat.S_IMODE(folder.stat().st_mode))}
    for path in folder.rglob("*"):
        found[str(path.relative_to(folder))] = oct(stat.S_IMODE(path.lstat().st_mode))
    return found


def _wrong_modes(folder: Path) -> dict[str, str]:
    return {name: mode for name, mode in _modes(folder).items()
            if mode != (oct(0o700) if (folder / name).is_dir() else oct(0o600))}


def test_state_files_are_private_whatever_the_umask(
        tmp_path, mosquitto, influxdb, influx_db) -> None:
    config = _config(tmp_path, mosquitto, influxdb, influx_db)
    state = tmp_path / "var"
    gateway = GatewayProcess(config)
    with umask(0o022):  # what a login shell gives: new files 0644, new folders 0755
        gateway.start()
    try:
        with Device(mosquitto.port) as device:  # an alert to journal, a reading to write
            device.publish("sensors/gh-1/temperature", "35")
        influxdb.wait_for_count(influx_db, 1, measurement="temperature")
        _wait("alert", lambda: _api(config, "/api/v1/events?limit=50")["events"])
        running = _modes(state)
        wrong_while_running = _wrong_modes(state)
    finally:
        gateway.stop()
    for name in ("journal.sqlite3", "journal.sqlite3-wal", "outbox.sqlite3"):
        assert name in running, running  # the files the check covers do exist
    assert wrong_while_running == {}, running
    assert _wrong_modes(state) == {}, _modes(state)


def test_files_left_readable_by_an_older_run_are_made_private(
        tmp_path, mosquitto, influxdb, influx_db) -> None:
    config = _config(tmp_path, mosquitto, influxdb, influx_db)
    state = tmp_path / "var"
    with umask(0o022), GatewayProcess(config):
        pass
    for path in (state, *state.iterdir()):
        path.chmod(0o755 if path.is_dir() else 0o644)  # as the gateway used to leave them
    assert _wrong_modes(state)
    with umask(0o022), GatewayProcess(config) as gateway:
        assert _wrong_modes(state) == {}, _modes(state)
    assert f"{state}/journal.sqlite3 was mode 0644: now 0600" in gateway.log()


def test_a_world_writable_state_dir_is_refused(tmp_path, mosquitto, influxdb,
                                              influx_db) -> None:
    config = _config(tmp_path, mosquitto, influxdb, influx_db)
    state = tmp_path / "var"
    state.mkdir()
    state.chmod(0o777)  # e.g. made by hand, or a shared folder
    gateway = GatewayProcess(config)
    started = time.monotonic()
    gateway.start(wait_for=None)
    assert gateway.proc is not None
    try:
        code: int | None = gateway.proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        code = None  # it runs on that directory
    finally:
        gateway.stop()
    assert code == 2, gateway.log()
    assert time.monotonic() - started < 10
    lines = [line for line in gateway.log().splitlines() if str(state) in line]
    assert len(lines) == 1, gateway.log()
    assert "world-writable" in lines[0] and f"chmod 700 {state}" in lines[0], lines[0]
    assert list(state.iterdir()) == []  # nothing opened in it
    assert stat.S_IMODE(state.stat().st_mode) == 0o777  # and nothing changed
    assert "connecting to MQTT" not in gateway.log()
    # `outpost config check` says so too.
    check = subprocess.run([sys.executable, "-m", "gateway", "config", "check", "-c",
                            str(config)], cwd=tmp_path, capture_output=True, text=True,
                           timeout=30, check=False)
    assert check.returncode == 1 and "world-writable" in check.stderr, check.stderr


def _readings(config: Path, device: str) -> int:
    found = [d for d in _api(config, "/api/v1/devices")["devices"] if d["device"] == device]
    return int(found[0]["readings"]) if found else 0


@pytest.mark.parametrize("second", ["same config file", "same state_dir, its own HTTP port"])
def test_a_second_gateway_on_the_same_state_dir_stops_and_the_first_keeps_its_session(
        tmp_path, mosquitto, influxdb, influx_db, second: str) -> None:
    config = _config(tmp_path, mosquitto, influxdb, influx_db)
    first = GatewayProcess(config).start()
    try:
        assert first.proc is not None
        with Device(mosquitto.port) as device:
            device.publish("sensors/gh-1/temperature", "20")
            influxdb.wait_for_count(influx_db, 1, measurement="temperature")
            seen_at_start = len(mosquitto.log_path.read_bytes())

            other = config
            if second != "same config file":  # a copy that only changes where the API listens
                data = yaml.safe_load(config.read_text())
                data["http"]["listen"] = f"127.0.0.1:{free_port()}"
                data["state_dir"] = str(tmp_path / "var")
                data["rules"] = [str(tmp_path / "rules.yaml")]  # the same rules, from there
                (tmp_path / "second").mkdir()
                other = write_config(tmp_path / "second" / "outpost.yaml", data)
            clone = GatewayProcess(other)
            clone.log_path = tmp_path / "second.log"
            clone.start(wait_for=None)
            assert clone.proc is not None
            try:
                code = clone.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                clone.stop(signal.SIGKILL)
                raise AssertionError(f"the second gateway kept running:\n{clone.log()}") from None
            clone.stop()
            assert code == 2, clone.log()
            expected = f"another outpost (pid {first.proc.pid}) uses {tmp_path / 'var'}"
            assert expected in clone.log(), clone.log()

            # The first one still has its sessions: it keeps receiving, nobody took over.
            for value in range(21, 26):
                device.publish("sensors/gh-1/temperature", str(value))
            influxdb.wait_for_count(influx_db, 6, measurement="temperature")
            _wait("6 readings", lambda: _readings(config, "gh-1") >= 6)
            assert _readings(config, "gh-1") == 6
        broker_log = mosquitto.log_path.read_bytes()[seen_at_start:].decode(errors="replace")
        assert "already connected, closing old connection" not in broker_log, broker_log
        assert "lost the broker connection" not in first.log(), first.log()
        assert first.proc.poll() is None
    finally:
        first.stop()
