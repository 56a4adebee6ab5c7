"""A port in use, a missing file, an unreachable broker: one line that says what and where,
exit 2, never a traceback."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.app import Gateway
from gateway.config import load_config
from rules import SourceError
from tests.cli.helpers import lines, outpost
from tests.gateway.harness import gateway_config, write_config
from tests.services import free_port

IN_USE = "is already in use (another outpost? change http.listen)"


def _config(tmp_path: Path, mosquitto, influxdb, db: str, **extra) -> Path:
    return write_config(
        tmp_path / "outpost.yaml",
        gateway_config(mosquitto.port, influxdb.url, db, rules=[], **extra),
    )


def test_a_port_in_use_is_one_line_naming_it_and_exit_2(
    tmp_path, mosquitto, influxdb, influx_db
) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        path = _config(
            tmp_path, mosquitto, influxdb, influx_db, http={"listen": f"127.0.0.1:{port}"}
        )
        result = outpost("run", "-c", str(path), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    [line] = lines(result.stderr)
    assert re.fullmatch(
        rf"{re.escape(str(path))}:\d+:\d+: http\.listen 127\.0\.0\.1:{port} {re.escape(IN_USE)}",
        line,
    ), line


async def test_a_port_taken_after_the_check_is_the_same_one_line(
    tmp_path, mosquitto, influxdb, influx_db
) -> None:
    port = free_port()
    path = _config(tmp_path, mosquitto, influxdb, influx_db, http={"listen": f"127.0.0.1:{port}"})
    gateway = Gateway(load_config(str(path)))  # the port is free now
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        with pytest.raises(SourceError) as caught:
            await asyncio.wait_for(gateway.run(asyncio.Event()), 30)
    [problem] = caught.value.problems
    assert problem.mark.file == str(path) and problem.mark.line > 0
    assert problem.message == f"http.listen 127.0.0.1:{port} {IN_USE}"


def _missing_config(tmp: Path, *_: object) -> tuple[list[str], list[str]]:
    return ["run", "-c", "nope.yaml"], [
        r"nope\.yaml:1:1: cannot read: No such file or directory "
        r"\(`.+ init -c nope\.yaml` writes a starter one\)"
    ]


def _missing_rules(tmp: Path, mosquitto, influxdb, db: str) -> tuple[list[str], list[str]]:
    path = write_config(
        tmp / "outpost.yaml",
        gateway_config(mosquitto.port, influxdb.url, db, rules=["rules/greenhouse.yaml"]),
    )
    return ["run", "-c", str(path)], [
        rf"{re.escape(str(path))}:\d+:\d+: rules: no such file "
        rf"{re.escape(str(tmp / 'rules' / 'greenhouse.yaml'))}"
    ]


def _missing_tls(tmp: Path, mosquitto, influxdb, db: str) -> tuple[list[str], list[str]]:
    config = gateway_config(mosquitto.port, influxdb.url, db, rules=[])
    config["mqtt"]["tls"] = {"ca": "pki/ca.crt", "cert": "pki/gw.crt", "key": "pki/gw.key"}
    path = write_config(tmp / "outpost.yaml", config)
    return ["run", "-c", str(path)], [
        rf"{re.escape(str(path))}:\d+:\d+: mqtt\.tls\.{key}: cannot read "
        rf"{re.escape(str(tmp / 'pki' / name))}: No such file or directory"
        for key, name in (("ca", "ca.crt"), ("cert", "gw.crt"), ("key", "gw.key"))
    ]


def _unknown_profile(tmp: Path, mosquitto, influxdb, db: str) -> tuple[list[str], list[str]]:
    config = gateway_config(mosquitto.port, influxdb.url, db, rules=[])
    config["serial"] = [{"port": "/dev/ttyUSB7", "device": "probe-1", "profile": "dht23"}]
    path = write_config(tmp / "outpost.yaml", config)
    return ["run", "-c", str(path)], [
        rf"{re.escape(str(path))}:\d+:\d+: serial: unknown sensor profile 'dht23'; known: .+"
    ]


def _replay_page(tmp: Path, *_: object) -> tuple[list[str], list[str]]:
    (tmp / "rules.yaml").write_text("rules: []\n")
    (tmp / "in.jsonl").write_text('{"ts": 1, "device": "a", "metric": "t", "value": 1}\n')
    page = tmp / "reports" / "replay.html"
    return [
        "rules", "replay", "--rules", str(tmp / "rules.yaml"),
        "--input", str(tmp / "in.jsonl"), "--html", str(page),
    ], [
        r"replayed 1 readings, 0 alert events in .+",
        rf"--html {re.escape(str(page))}: cannot write: No such file or directory",
    ]  # fmt: skip


def _record_output(tmp: Path, *_: object) -> tuple[list[str], list[str]]:
    out = tmp / "recordings" / "day.jsonl"
    return ["record", "--output", str(out), "--duration", "1s"], [
        rf"outpost record: {re.escape(str(out))}: No such file or directory"
    ]


def _record_broker(tmp: Path, *_: object) -> tuple[list[str], list[str]]:
    port = free_port()
    path = write_config(tmp / "outpost.yaml", {"mqtt": {"host": "127.0.0.1", "port": port}})
    return ["record", "-c", str(path), "--output", str(tmp / "x.jsonl")], [
        rf"outpost record: broker 127\.0\.0\.1:{port}: .*[Cc]onnection refused.*"
    ]


def _schema_out(tmp: Path, *_: object) -> tuple[list[str], list[str]]:
    (tmp / "taken").write_text("a file, not a folder\n")
    return ["schema", "--out", str(tmp / "taken" / "schemas")], [
        rf"outpost schema: {re.escape(str(tmp / 'taken' / 'schemas'))}: Not a directory"
    ]


Case = Callable[..., tuple[list[str], list[str]]]


@pytest.mark.parametrize(
    "case",
    [
        _missing_config,
        _missing_rules,
        _missing_tls,
        _unknown_profile,
        _replay_page,
        _record_output,
        _record_broker,
        _schema_out,
    ],
    ids=lambda case: case.__name__.lstrip("_"),
)
def test_each_missing_file_or_unreachable_thing_is_one_line(
    case: Case, tmp_path, mosquitto, influxdb, influx_db
) -> None:
    argv, expected = case(tmp_path, mosquitto, influxdb, influx_db)
    result = outpost(*argv, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    said = lines(result.stderr)
    assert len(said) == len(expected), result.stderr
    for line, pattern in zip(said, expected, strict=True):
        assert re.fullmatch(pattern, line), (line, pattern)
    assert "connecting" not in result.stdout + result.stderr
