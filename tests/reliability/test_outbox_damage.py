"""The outbox file damaged while the gateway is stopped, and the state directory full."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.outbox import DiskOutbox
from tests.reliability.rig import Stack
from tests.reliability.scenarios import disk_full, outbox_truncated


def test_truncated_outbox_recovers_complete_records_counts_the_rest_and_runs(stack):
    result = outbox_truncated(stack, readings=2000, rate=1000, keep=0.5, timeout=30)
    recovered, reported = result.extra["recovered"], result.extra["lost_reported"]
    assert 0 < recovered < result.delivered  # the cut destroyed some, not all
    assert result.extra["stored_backlog"] == recovered  # every complete record was sent
    # What is gone is exactly what the salvage reported and counted as gone...
    assert result.extra["destroyed"] == reported, result.extra
    assert result.lost == 0
    assert result.dropped == {"outbox_damaged": reported}
    # ...and the gateway kept working: every reading published after the restart landed.
    assert result.extra["after"]["lost"] == 0


@pytest.fixture
def small_state_dir(tmp_path: Path) -> Iterator[Path]:
    mountpoint = tmp_path / "small-state"
    mountpoint.mkdir()
    # mode=0700: a tmpfs is world-writable (1777) by default, and the gateway refuses that.
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2M,mode=0700", "tmpfs",
                            str(mountpoint)],
                           capture_output=True, text=True, check=False)
    if mount.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs for the full-disk scenario (root needed): "
                    f"{mount.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def test_full_state_dir_keeps_gateway_running_and_writes_again_once_space_is_back(
    tmp_path, small_state_dir
):
    with Stack(tmp_path / "stack", state_dir=small_state_dir) as stack:
        result = disk_full(stack, rate=200, full_for=5.0, timeout=40)
        assert stack.gateway.running()
    assert result.extra["degraded_seen"] == 1  # it noticed, and said so on /metrics
    # Back on disk within the outbox's retry_interval (5 s), even while InfluxDB is down
    # and the backfill backs off: its waits must not hold a batch of the memory fallback.
    assert result.extra["back_on_disk_s"] < 8
    assert result.lost == 0, result.extra["missing_seqs"]
    assert result.stored == result.delivered == result.sent
    assert result.dropped == {}


def _fill_outbox(state_dir: Path, n: int) -> DiskOutbox:
    box = DiskOutbox(state_dir)
    for start in range(0, n, 1000):
        box.append([f"seq,device=rel-1 value={i}.0 {1795767752000000000 + i}"
                    for i in range(start, min(n, start + 1000))])
    box.commit()
    return box


@pytest.mark.parametrize("image", ["closed", "running"])
def test_truncated_large_outbox_recovers_the_whole_rows_left_on_disk(tmp_path, image):
    # 30,000 rows: the table's interior pages are written late and sit in the lost half,
    # so a walk through SQLite alone reaches no leaf at all. "running": the files as a
    # running gateway leaves them at a power cut, the last 1,000 rows only in the -wal.
    n, source, damaged = 30_000, tmp_path / "source", tmp_path / "damaged"
    damaged.mkdir()
    _fill_outbox(source, n).close()
    if image == "running":
        box = DiskOutbox(source)
        box.append([f"seq,device=rel-1 value={i}.0 {1795767752000000000 + i}"
                    for i in range(n, n + 1000)])
        box.commit()
        assert (source / "outbox.sqlite3-wal").stat().st_size > 0
        n += 1000
    for name in ("outbox.sqlite3", "outbox.sqlite3-wal"):
        if (source / name).exists():
            shutil.copyfile(source / name, damaged / name)
    if image == "running":
        box.close()
    path = damaged / "outbox.sqlite3"
    os.truncate(path, path.stat().st_size // 2 + 1234)

    reopened = DiskOutbox(damaged)
    try:
        report = reopened.recovery
        assert report is not None
        batch = reopened.begin(n)
        assert batch is not None
        values = [int(float(line.split()[1].removeprefix("value="))) for line in batch.lines]
    finally:
        reopened.close()
    assert values == sorted(set(values))  # whole rows, in order, once each
    assert report.recovered == len(values) >= 0.4 * n
    assert report.recovered + report.lost_estimate + report.bad_rows == n
    if image == "running":
        assert set(range(n - 1000, n)) <= set(values)  # what only the -wal held
