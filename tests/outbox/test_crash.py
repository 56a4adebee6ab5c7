"""kill -9 of a process writing with append_durable: every confirmed line survives."""

from __future__ import annotations

import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from gateway.outbox import DiskOutbox

ROOT = Path(__file__).resolve().parents[2]
LINE = re.compile(r"crash,run=(\d+),w=(\d+) v=(\d+)i")


def run_and_kill(state_dir: Path, run: int, after: float) -> set[tuple[int, int, int]]:
    """Start the child, SIGKILL it ``after`` s later; the (run, writer, i) it confirmed."""
    # A file, not a pipe: a full pipe would block the child and let the outbox catch up.
    report = state_dir.parent / f"confirmed-{run}.txt"
    with report.open("wb") as out, (state_dir.parent / f"stderr-{run}.txt").open("wb") as err:
        child = subprocess.Popen(
            [sys.executable, "-m", "tests.outbox.durable_child", str(state_dir), str(run)],
            cwd=ROOT,
            stdout=out,
            stderr=err,
        )
        time.sleep(after)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL, (state_dir.parent / f"stderr-{run}.txt").read_text()
    confirmed: set[tuple[int, int, int]] = set()
    for text in report.read_text().split("\n")[:-1]:  # the last piece may be cut short
        if text == "ready":
            continue
        r, w, first, last = map(int, text.split())
        confirmed.update((r, w, i) for i in range(first, last + 1))
    return confirmed


def test_every_confirmed_line_survives_kill_9_at_random_moments(tmp_path: Path) -> None:
    rng = random.Random(6)
    state_dir = tmp_path / "state"
    confirmed: set[tuple[int, int, int]] = set()
    for run in range(8):
        # Early kills land while Python starts or the outbox opens, late ones mid-stream.
        confirmed |= run_and_kill(state_dir, run, rng.uniform(0.05, 0.8))
    assert len(confirmed) > 1000  # the kills did land mid-stream

    outbox = DiskOutbox(state_dir)
    try:
        assert outbox.recovery is None  # a killed process never damages the file
        batch = outbox.begin(10**7)
        assert batch is not None
        stored = [tuple(map(int, m.groups())) for m in map(LINE.fullmatch, batch.lines) if m]
    finally:
        outbox.close()
    assert len(stored) == len(batch.lines)
    assert confirmed <= set(stored), f"lost {len(confirmed - set(stored))} confirmed lines"
    assert len(stored) == len(set(stored))  # nothing duplicated either
    # Each writer's lines are in its own order.
    for key in {(r, w) for r, w, _ in stored}:
        mine = [i for r, w, i in stored if (r, w) == key]
        assert mine == sorted(mine)
