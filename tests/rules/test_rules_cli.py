"""`rules check | test | replay` as a user runs them (subprocess) and as functions."""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli import rules as cli_rules

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "greenhouse"
T0 = 1_795_773_600 * 10**9
S = 10**9


def outpost(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def call(*argv: str) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser()
    cli_rules.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(list(argv))
    out, err = io.StringIO(), io.StringIO()
    return args.func(args, out, err), out.getvalue(), err.getvalue()


def test_example_rules_check_and_tests_pass_via_the_cli() -> None:
    check = outpost("rules", "check", str(EXAMPLE / "rules.yaml"))
    assert check.returncode == 0, check.stderr
    assert "4 rule(s) OK" in check.stdout
    test = outpost("rules", "test", str(EXAMPLE / "rules_test.yaml"))
    assert test.returncode == 0, test.stdout + test.stderr
    assert "5 passed, 0 failed" in test.stdout


def test_check_prints_every_error_with_file_line_col_and_exits_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "rules:\n  - name: x\n    match: {metric: m}\n    when: value >> 3\n    for: soon\n"
    )
    result = outpost("rules", "check", str(bad), str(EXAMPLE / "rules.yaml"))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"{bad}:4:18: when: unexpected '>'",
        f"{bad}:5:10: 'for': bad duration 'soon' (expected e.g. 30s, 5m, 1h30m)",
        "2 error(s)",
    ]


def test_check_reports_unreadable_files() -> None:
    code, _, err = call("rules", "check", "/nonexistent/rules.yaml")
    assert code == 1 and err.startswith("/nonexistent/rules.yaml:1:1: cannot read")


def test_failing_rule_test_exits_1_and_shows_expected_vs_got(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text((EXAMPLE / "rules.yaml").read_text())
    (tmp_path / "t.yaml").write_text(
        "rule_files: [rules.yaml]\ntests:\n  - name: wrong\n"
        "    series: [{device: gh-1, metric: temperature, values: '31'}]\n"
        "    expect: [{at: 0s, alerts: [{rule: greenhouse_hot, device: gh-1, state: firing}]}]\n"
    )
    code, out, _ = call("rules", "test", str(tmp_path / "t.yaml"))
    assert code == 1
    assert "expected firing, got pending" in out and "0 passed, 1 failed" in out


def write_input(path: Path) -> None:
    values = [25, 31, 31, 31, 31, 31, 31, 31, 26]
    lines = [
        {
            "ts": T0 + i * 10 * S,
            "device": "gh-1",
            "metric": "temperature",
            "value": v,
            "tags": {"zone": "north"},
        }
        for i, v in enumerate(values)
    ]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")


def test_replay_json_prints_alert_events_in_time_order(tmp_path: Path) -> None:
    write_input(tmp_path / "in.jsonl")
    result = outpost(
        "rules",
        "replay",
        "--rules",
        str(EXAMPLE / "rules.yaml"),
        "--input",
        str(tmp_path / "in.jsonl"),
        "--json",
        "--until",
        "+10m",
    )
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(e["rule"], e["state"], e["at"]) for e in events] == [
        ("greenhouse_hot", "pending", "2026-11-27T10:00:10.000Z"),
        ("greenhouse_hot_average", "firing", "2026-11-27T10:00:20.000Z"),
        ("greenhouse_hot", "firing", "2026-11-27T10:01:10.000Z"),
        ("greenhouse_hot", "resolved", "2026-11-27T10:01:20.000Z"),
        ("sensor_silent", "firing", "2026-11-27T10:11:20.000Z"),
    ]
    assert events[0]["labels"] == {"zone": "north"}


def test_replay_timeline_progress_and_html(tmp_path: Path) -> None:
    write_input(tmp_path / "in.jsonl")
    html = tmp_path / "report.html"
    code, out, err = call(
        "rules",
        "replay",
        "--rules",
        str(EXAMPLE / "rules.yaml"),
        "--input",
        str(tmp_path / "in.jsonl"),
        "--html",
        str(html),
        "--progress",
    )
    assert code == 0
    assert "FIRING   greenhouse_hot gh-1 value=31.0  gh-1 is 31.0 °C" in out
    assert "COMMAND  fan-1 speed=100  (greenhouse_hot gh-1 firing)" in out
    assert "replayed 9 readings, 4 alert events in " in err
    page = html.read_text()
    assert page.startswith("<!doctype html>") and "<svg" in page
    assert 'class="pending"' in page and 'class="firing"' in page and 'class="thr"' in page
    assert "http://" not in page and "https://" not in page  # self-contained


def test_replay_reports_bad_input_lines(tmp_path: Path) -> None:
    bad = tmp_path / "in.jsonl"
    bad.write_text('{"ts": 1, "device": "a", "metric": "t", "value": 1}\nnot json\n')
    code, _, err = call(
        "rules", "replay", "--rules", str(EXAMPLE / "rules.yaml"), "--input", str(bad)
    )
    assert code == 1 and f"{bad}:2:" in err


@pytest.mark.parametrize("until", ["1795773600000000000", "2026-11-27T10:00:00Z", "+5m"])
def test_until_formats(until: str) -> None:
    assert cli_rules._parse_until(until, T0) in (T0, T0 + 300 * S)
