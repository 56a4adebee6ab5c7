"""The benchmark end to end at a tiny size: every row is measured and reports every figure.

Not a timing test: a few hundred readings say nothing about speed. What is checked is that
the whole bench runs against the real broker, influxd and gateway, that no reading is
lost, and that the printed table and the JSON file carry a number in every column of
every row (a row whose measurement broke shows ``?``, ``nan`` or nothing).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks.cpulimit import CpuLimit, CpuLimitUnavailable

REPO = Path(__file__).resolve().parents[2]
FIGURES = ("rate", "ratio", "cpu_per_10k", "peak_rss_mib", "lost")
NUMERIC_COLUMNS = ("msg/s", "ratio", "CPU s/10k msg", "peak RSS MiB", "lost")
LATENCY = ("alert_p50_ms", "alert_p99_ms", "command_p50_ms", "command_p99_ms")


def cpu_limit_usable() -> bool:
    try:
        with CpuLimit(0.25, name="outpost-bench-probe"):
            return True
    except CpuLimitUnavailable:
        return False


def run_bench(tmp_path: Path, *args: str) -> tuple[str, dict[str, Any]]:
    out = tmp_path / "bench.json"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench", *args, "--json", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    return done.stdout, json.loads(out.read_text())


def table_rows(stdout: str) -> dict[str, dict[str, str]]:
    """The printed main table: row id → {column: cell}."""
    lines = [line for line in stdout.splitlines() if line.startswith("| ")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    rows = {}
    for line in lines[1:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if len(cells) == len(header) and cells[0] != header[0]:
            rows[cells[0]] = dict(zip(header, cells, strict=True))
    return rows


def assert_every_figure(stdout: str, document: dict[str, Any], ids: list[str]) -> None:
    rows = {row["id"]: row for row in document["rows"]}
    assert list(rows) == ids
    for row in rows.values():
        for name in FIGURES:
            value = row[name]
            assert isinstance(value, (int, float)) and math.isfinite(value), (row["id"], name)
        assert row["rate"] > 0 and row["ratio"] > 0 and row["peak_rss_mib"] > 0, row
        assert row["cpu_per_10k"] >= 0 and row["lost"] == 0, row
    printed = table_rows(stdout)
    assert list(printed) == ids
    for row_id, cells in printed.items():
        for column in NUMERIC_COLUMNS:
            assert float(cells[column].replace(",", "")) >= 0, (row_id, column, cells[column])


def assert_latency(row: dict[str, Any]) -> None:
    figures = row["figures"]
    assert figures["hot_readings"] > 0
    assert figures["alert_missing"] == 0 and figures["command_missing"] == 0, figures
    for name in LATENCY:
        assert math.isfinite(figures[name]) and figures[name] > 0, (name, figures)
        assert f"{figures[name]:.1f} ms" in row["notes"]


@pytest.mark.slow
def test_every_row_reports_every_figure(tmp_path: Path) -> None:
    stdout, document = run_bench(
        tmp_path, "--count", "300", "--latency-rate", "200", "--latency-seconds", "1",
        "--disk", "--window", "2",
    )  # fmt: skip
    budget = ["B6", "G6"] if cpu_limit_usable() else []
    ids = ["B1", "B2", "B3", "B4", "B5", "G1", "G2", "G3", "G4", "G5", *budget, "D1"]
    assert_every_figure(stdout, document, ids)
    rows = {row["id"]: row for row in document["rows"]}
    assert rows["B2"]["ratio"] == 1.0 and rows["B4"]["ratio"] == 1.0
    assert rows["G4"]["figures"]["ratio_to_no_rules"] > 0
    assert rows["G2"]["figures"]["readings_per_s"] == pytest.approx(5 * rows["G2"]["rate"])
    assert_latency(rows["G5"])
    assert rows["D1"]["figures"]["disk_kib_per_min"] >= 0
    if not budget:
        assert "B6 and G6 (a quarter of one core) SKIPPED" in stdout


@pytest.mark.slow
def test_sustained_reports_first_and_last_window(tmp_path: Path) -> None:
    stdout, document = run_bench(tmp_path, "--count", "300", "--sustained", "0.1", "--window", "2")
    assert_every_figure(stdout, document, ["G1", "P1", "S1", "D1"])
    most = document["rows"][1]
    assert most["figures"]["paced_maximum"] > 0 and "carried" in most["notes"], most
    held = document["rows"][2]
    assert_latency(held)
    windows = held["figures"]["windows"]
    assert [w["window"] for w in windows] == ["first", "last"]
    for window in windows:
        assert window["rss_mib"] > 0 and window["hot_readings"] > 0, window
        assert math.isfinite(window["alert_p99_ms"]) and math.isfinite(window["command_p99_ms"])
    assert "| first |" in stdout and "| last |" in stdout
    assert "S1 flat" in stdout or "S1 NOT flat" in stdout
