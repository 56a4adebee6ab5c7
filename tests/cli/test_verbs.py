"""Every verb of the README's command table, as a user meets it: ``--version``,
``--log-level`` everywhere, ``--json`` wherever a verb prints results, hints that run as
printed, and ``outpost device serial`` saying what its port does."""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gateway.cli import build_parser
from tests.cli.helpers import ENTRY, MODULE, outpost
from tests.devices.conftest import FakeSerialDevice
from tests.gateway.harness import Device, GatewayProcess, gateway_config, write_config
from tests.services import free_port

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "greenhouse"
VERSION = re.compile(r"outpost \d+\.\d+\.\d+\S*")

# The verbs that print results, and so take --json (events and replay: one object a line).
JSON_VERBS = {
    "config check", "schema", "rules check", "rules test", "rules replay", "events",
    "status", "command", "silence add", "silence list", "silence remove", "init",
}  # fmt: skip


def _leaves(parser: argparse.ArgumentParser, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every runnable verb (``rules check``, ``run``…) with its parser."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path.strip(), parser
        return
    for name, child in subs[0].choices.items():
        yield from _leaves(child, f"{path} {name}")


def test_version_from_the_installed_command_and_the_module() -> None:
    for argv in ([str(ENTRY), "--version"], [*MODULE, "--version"]):
        result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert VERSION.fullmatch(result.stdout.strip()), result.stdout


def test_every_verb_takes_log_level_and_those_that_print_results_take_json() -> None:
    verbs = dict(_leaves(build_parser()))
    assert set(verbs) >= JSON_VERBS, set(verbs)
    for name, parser in verbs.items():
        options = {o for a in parser._actions for o in a.option_strings}
        assert "--log-level" in options, name
        assert ("--json" in options) == (name in JSON_VERBS), name


def _json_values(text: str, lines: bool) -> list[Any]:
    if lines:
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return [json.loads(text)]


def test_json_output_of_every_verb_parses(tmp_path, mosquitto, influxdb, influx_db) -> None:
    (tmp_path / "api.token").write_text("t" * 32)
    (tmp_path / "api.token").chmod(0o600)
    (tmp_path / "rules.yaml").write_text((EXAMPLE / "rules.yaml").read_text())
    config = gateway_config(
        mosquitto.port, influxdb.url, influx_db, rules=["rules.yaml"],
        devices={
            "fan-1": {"commands": {"speed": {"type": "int", "min": 0, "max": 100},
                                   "mode": {"enum": ["auto", "manual"]}}},
            "heater-1": {"commands": {"power": {"enum": ["on", "off"]},
                                      "level": {"type": "int", "min": 0, "max": 100}}},
            "pump-1": {"commands": {"power": {"enum": ["on", "off"]},
                                    "flow": {"type": "int", "min": 0, "max": 100}}},
        },
    )  # fmt: skip
    config["http"]["token_file"] = "api.token"
    path = write_config(tmp_path / "outpost.yaml", config)
    readings = tmp_path / "in.jsonl"
    t0 = 1_795_755_600 * 10**9
    rows = [{"ts": t0 + i * 10**10, "device": "gh-1", "metric": "temperature", "value": 25 + i}
            for i in range(12)]  # fmt: skip
    readings.write_text("".join(json.dumps(row) + "\n" for row in rows))
    c = ["-c", str(path)]
    calls: list[tuple[list[str], bool]] = [
        (["config", "check", *c], False),
        (["schema", "--out", str(tmp_path / "schemas")], False),
        (["rules", "check", str(EXAMPLE / "rules.yaml")], False),
        (["rules", "test", str(EXAMPLE / "rules_test.yaml")], False),
        (["rules", "replay", "--rules", str(EXAMPLE / "rules.yaml"), "--input", str(readings)],
         True),
        (["init", "-c", str(tmp_path / "new" / "outpost.yaml")], False),
        (["status", *c], False),
        (["command", *c, "fan-1", "speed=40"], False),
        (["silence", "add", *c, "--rule", "greenhouse_hot", "--for", "1h"], False),
        (["silence", "list", *c], False),
        (["silence", "remove", *c, "1"], False),
        (["events", *c], True),
    ]  # fmt: skip
    answers = {}
    with GatewayProcess(path), Device(mosquitto.port) as sensor:
        sensor.publish("sensors/gh-1/temperature", "22")
        for argv, json_lines in calls:
            result = outpost(*argv, "--json", cwd=tmp_path)
            assert result.returncode in (0, 1), (argv, result.stderr)
            values = _json_values(result.stdout, json_lines)
            assert values, (argv, result.stdout)
            answers[" ".join(argv[:2])] = values
    assert answers["config check"][0]["ok"] is True
    assert answers["rules check"][0] == {
        "ok": True, "rules": 4, "files": [str(EXAMPLE / "rules.yaml")], "errors": []
    }  # fmt: skip
    assert answers["rules test"][0]["ok"] is True and answers["rules test"][0]["failed"] == 0
    assert {e["state"] for e in answers["rules replay"]} >= {"pending", "firing"}
    assert answers["status -c"][0]["status"]["mqtt_connected"] is True
    assert answers["command -c"][0]["outcome"] == "sent"
    assert answers["silence add"][0]["id"] == 1
    assert [s["id"] for s in answers["silence list"][0]["silences"]] == [1]
    assert {e["kind"] for e in answers["events -c"]} >= {"command"}


def _hint(stderr: str) -> str:
    """The command inside the backquotes of ``(is `… run` running with this config?)``."""
    match = re.search(r"\(is `(.+) run` running with this config\?\)", stderr)
    assert match, stderr
    return match[1]


def test_the_hints_run_as_printed_when_outpost_is_not_on_path(tmp_path) -> None:
    listen = f"127.0.0.1:{free_port()}"
    config = write_config(tmp_path / "outpost.yaml", {"http": {"listen": listen}})
    env = {**os.environ, "PATH": "/usr/bin:/bin"}  # the virtual environment's bin/ is not on it
    venv_root = ENTRY.parents[2]
    ways = [
        ([str(ENTRY)], tmp_path),  # the path install put it at
        ([os.path.relpath(ENTRY, venv_root)], venv_root),  # .venv/bin/outpost from the checkout
        (MODULE, tmp_path),  # python -m gateway
    ]
    for argv, cwd in ways:
        status = subprocess.run(
            [*argv, "status", "-c", str(config)], cwd=cwd, env=env,
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert status.returncode == 2, status.stderr
        printed = _hint(status.stderr)
        again = subprocess.run(
            f"{printed} --version", shell=True, cwd=cwd, env=env,
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert again.returncode == 0, (argv, printed, again.stderr)
        assert VERSION.fullmatch(again.stdout.strip()), again.stdout
        assert shlex.split(printed)[0] != "outpost"  # not on PATH: never the bare name


def _wait_for(log: Path, text: str, proc: subprocess.Popen[bytes], timeout: float = 15) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        said = log.read_text(errors="replace")
        if text in said:
            return said
        assert proc.poll() is None, said
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not said within {timeout}s:\n{log.read_text()}")


def test_device_serial_says_when_its_port_is_missing_and_when_it_opens(
    tmp_path, mosquitto
) -> None:
    sensor = FakeSerialDevice(tmp_path / "ttyGREENHOUSE")
    sensor.unplug()  # not there yet: a wrong name, or a sensor not plugged in
    log = tmp_path / "serial.log"
    with open(log, "wb") as out, Device(mosquitto.port, subscribe=["sensors/probe-1"]) as mqtt:
        proc = subprocess.Popen(
            [*MODULE, "device", "serial", "--port", str(sensor.link), "--device", "probe-1",
             "--reopen-interval", "0.3", "--host", "127.0.0.1",
             "--port-mqtt", str(mosquitto.port)],
            stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path,
        )  # fmt: skip
        try:
            _wait_for(
                log,
                f"cannot open serial port {sensor.link} (probe-1): No such file or directory; "
                "retrying every 0.3s",
                proc,
            )
            sensor.plug()
            _wait_for(log, f"serial port {sensor.link} open (probe-1)", proc)
            sensor.line({"temperature": 21.5})
            [reading] = mqtt.json_messages(1, timeout=10)
            assert reading["temperature"] == 21.5
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(15)
            sensor.unplug()
    assert proc.returncode == 0, log.read_text()
    said = log.read_text()
    assert said.count("cannot open serial port") == 1, said  # said once, not every 0.3 s
    assert "Traceback" not in said
