"""``outpost status`` against the running gateway; journald/JSON logging; the systemd unit."""

from __future__ import annotations

import argparse
import configparser
import json
import logging
import sys
from pathlib import Path

import pytest

from gateway.cli import status as status_cli
from gateway.logsetup import JournaldFormatter, JsonFormatter
from tests.http.conftest import LiveGateway, unique

UNIT = Path(__file__).resolve().parents[2] / "deploy" / "systemd" / "outpost.service"


def run_status(*argv: str) -> int:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-c", "--config")
    parser = argparse.ArgumentParser(prog="outpost")
    status_cli.add_parser(parser.add_subparsers(dest="verb"), common)
    args = parser.parse_args(["status", *argv])
    return int(args.func(args))


def test_status_prints_a_summary_of_the_running_gateway(
        live_gateway: LiveGateway, capsys: pytest.CaptureFixture[str]) -> None:
    gw = live_gateway
    device = unique("status")
    gw.publish(device, "temperature", 33)  # too_hot fires
    gw.wait_for("/api/v1/alerts", lambda b: any(a["device"] == device and a["state"] == "firing"
                                                for a in b["alerts"]))
    gw.wait_for("/api/v1/status", lambda b: b["influx_up"])
    config = gw.process.config_path
    code = run_status("-c", str(config))
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert out.startswith("Outpost ") and gw.url in out, out
    assert "MQTT       connected" in out and "InfluxDB   up" in out, out
    assert f"FIRING   critical  too_hot  {device}  value 33" in out, out
    assert run_status("--url", gw.url, "--json") == 0
    assert json.loads(capsys.readouterr().out)["status"]["mqtt_connected"] is True


def test_status_says_when_the_gateway_cannot_be_reached(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert run_status("--url", "http://127.0.0.1:9") == 2
    assert "cannot reach the gateway at http://127.0.0.1:9" in capsys.readouterr().err


def _record(level: int, msg: str, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            exc_info = sys.exc_info()
    return logging.LogRecord("outpost.mqtt", level, __file__, 1, msg, (), exc_info)


def test_json_log_lines_carry_level_logger_and_traceback() -> None:
    line = JsonFormatter().format(_record(logging.WARNING, "broker gone", exc=True))
    entry = json.loads(line)
    assert entry["level"] == "warning" and entry["logger"] == "outpost.mqtt"
    assert entry["msg"] == "broker gone" and "ValueError: boom" in entry["exc"]
    assert entry["ts"].endswith("Z") and "\n" not in line
    assert JsonFormatter(journald=True).format(_record(logging.ERROR, "x")).startswith("<3>{")


def test_journald_lines_carry_their_priority_and_no_timestamp() -> None:
    text = JournaldFormatter().format(_record(logging.ERROR, "cannot write", exc=True))
    lines = text.splitlines()
    assert lines[0] == "<3>outpost.mqtt: cannot write"
    assert all(line.startswith("<3>") for line in lines)  # the traceback stays an error
    assert JournaldFormatter().format(_record(logging.INFO, "ok")) == "<6>outpost.mqtt: ok"


def test_systemd_unit_restarts_runs_as_its_own_user_and_is_hardened() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string(UNIT.read_text(encoding="utf-8"))
    service = unit["Service"]
    assert service["Restart"] == "on-failure"
    assert service["User"] == "outpost" and service["Group"] == "outpost"
    assert service["StateDirectory"] == "outpost"
    assert "-c /etc/outpost/outpost.yaml" in service["ExecStart"]
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"  # SIGHUP reloads the rules
    for key in ("NoNewPrivileges", "ProtectSystem", "ProtectHome", "PrivateTmp"):
        assert key in service, key
    # Soft and hard limit at once: the gateway never needs the (filtered) setrlimit.
    assert int(service["LimitNOFILE"]) >= 1024
    assert service["SystemCallErrorNumber"] == "EPERM"
    assert "StartLimitBurst" in unit["Unit"]  # belongs to [Unit], not [Service]
    assert unit["Install"]["WantedBy"] == "multi-user.target"
