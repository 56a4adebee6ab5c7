"""Hostile YAML in the files the gateway reads: a rule file replaced while it runs, and
``outpost.yaml`` at start.

Three shapes, each once an outage: nesting thousands of levels deep (the YAML
composer recursed until RecursionError, which the reload did not catch, so the
rules task died and took the gateway with it); aliases of aliases ("billion
laughs": a few hundred bytes that expand to millions of values, seconds of CPU
and hundreds of MB); and a file of tens of MB (read whole and parsed on the event
loop). A running gateway must refuse each with ``file:line:col: message``, log
and journal the refusal, stay up and keep its previous rules; at start each is
a clean error and an exit code, never a traceback.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import pytest

from tests.gateway.harness import Device, GatewayProcess
from tests.security.rulegateway import (
    HOT_RULE,
    hot_fires,
    peak_rss_kib,
    reloads,
    replace_file,
    rules_gateway_config,
)

HUGE_MB = 32


def deeply_nested(top: str) -> tuple[str, int, str]:
    """A valid-looking file whose line 3 nests 5000 flow sequences."""
    text = f"{top}\n  - name: deep\n    labels: {'[' * 5000}{']' * 5000}\n"
    return text, 3, "YAML: nested deeper than 32 levels"


def billion_laughs(top: str) -> tuple[str, int, str]:
    """Six levels of nine aliases each: 316 bytes that are 531,441 strings expanded."""
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for prev, name in zip("abcde", "bcdef", strict=True):
        lines.append(f"{name}: &{name} [{', '.join(['*' + prev] * 9)}]")
    lines.append(f"{top.rstrip(':')}: *f")
    return "\n".join(lines) + "\n", 2, "YAML: aliases (*a) are not accepted"


def huge(top: str) -> tuple[str, int, str]:
    """A rule file of 32 MB: comments after a valid start."""
    padding = ("# " + "x" * 1021 + "\n") * (HUGE_MB * 1024)
    return f"{top}\n{padding}", 1, "file is larger than 1 MiB"


ATTACKS: dict[str, Callable[[str], tuple[str, int, str]]] = {
    "deeply_nested": deeply_nested,
    "billion_laughs": billion_laughs,
    "huge": huge,
}


@pytest.mark.parametrize("attack", ATTACKS)
def test_a_hostile_rule_file_is_refused_and_the_running_rules_stay(
        attack, tmp_path, mosquitto, influxdb, influx_db) -> None:
    config = rules_gateway_config(tmp_path, mosquitto, influxdb, influx_db)
    rule_file = tmp_path / "rules.d" / "greenhouse.yaml"
    text, line, message = ATTACKS[attack]("rules:")
    with GatewayProcess(config) as gateway, \
            Device(mosquitto.port, subscribe=["outpost/alerts/#"]) as device:
        assert gateway.proc is not None
        assert hot_fires(device, "gh-1")
        peak_before = peak_rss_kib(gateway.proc.pid)
        replace_file(rule_file, text)
        gateway.wait_log("rule files changed but are invalid", timeout=15)
        assert f"{rule_file}:{line}:" in gateway.log().split("are invalid")[-1]
        assert message in gateway.log()
        assert gateway.proc.poll() is None, "the gateway stopped"
        assert hot_fires(device, "gh-2"), "the rules loaded at start no longer run"
        grown_mb = (peak_rss_kib(gateway.proc.pid) - peak_before) / 1024
    assert grown_mb < 20, f"refusing the file took {grown_mb:.0f} MB"
    [refused] = reloads(config)
    assert refused["outcome"] == "refused" and refused["running"] == 1
    assert any(e.startswith(f"{rule_file}:{line}:") and message in e for e in refused["errors"])


@pytest.mark.parametrize("attack", ATTACKS)
@pytest.mark.parametrize("verb", [["run"], ["config", "check"]])
def test_a_hostile_outpost_yaml_stops_the_start_with_its_line(attack, verb, tmp_path) -> None:
    text, line, message = ATTACKS[attack]("mqtt:")
    config = tmp_path / "outpost.yaml"
    config.write_text(text)
    run = subprocess.run([sys.executable, "-m", "gateway", *verb, "-c", str(config)],
                         capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
    assert run.stderr.startswith(f"{config}:{line}:"), run.stderr[:500]
    assert message in run.stderr
    # `run`: 2, an invalid config (like every verb); `config check`: 1, the check failed
    assert run.returncode == (2 if verb == ["run"] else 1)
    assert "connecting" not in run.stdout + run.stderr


def test_the_same_rule_file_loads_when_it_is_written_out(
        tmp_path, mosquitto, influxdb, influx_db) -> None:
    """The refusals are about the shapes, not the content: the file repaired reloads."""
    config = rules_gateway_config(tmp_path, mosquitto, influxdb, influx_db)
    rule_file = tmp_path / "rules.d" / "greenhouse.yaml"
    with GatewayProcess(config) as gateway:
        replace_file(rule_file, billion_laughs("rules:")[0])
        gateway.wait_log("rule files changed but are invalid", timeout=15)
        replace_file(rule_file, HOT_RULE + "    labels: {room: north}\n")
        gateway.wait_log("rules reloaded: 0 kept, 1 changed", timeout=15)
    refused, applied = reloads(config)
    assert (refused["outcome"], applied["outcome"], applied["changed"]) == ("refused", "applied", 1)

