"""A damaged outbox file never stops the gateway: every complete row is salvaged."""

from __future__ import annotations

import logging
import random
import sqlite3
from pathlib import Path

import pytest

from gateway.outbox import DiskOutbox

N = 3000
ORIGINAL = [f'm,device=d{i % 7} v={i}i,note="{"x" * (i % 150)}" {i}' for i in range(N)]


@pytest.fixture(scope="module")
def healthy_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    state = tmp_path_factory.mktemp("healthy")
    outbox = DiskOutbox(state)
    outbox.append(ORIGINAL)
    outbox.close()  # checkpointed: every row is in the main file
    return state / "outbox.sqlite3"


def damaged_copy(healthy: Path, state: Path, keep: int, garbage: int, seed: int) -> None:
    """Copy of ``healthy`` cut to ``keep`` bytes, then ``garbage`` random bytes appended."""
    state.mkdir()
    data = healthy.read_bytes()[:keep] + random.Random(seed).randbytes(garbage)
    (state / "outbox.sqlite3").write_bytes(data)


def read_everything(outbox: DiskOutbox) -> list[str]:
    batch = outbox.begin(10 * N)
    if batch is None:
        return []
    outbox.reject(batch)
    return batch.lines


@pytest.mark.parametrize(
    ("fraction", "garbage"),
    [(0.0, 512), (0.01, 0), (0.25, 0), (0.5, 0), (0.5, 3000), (0.75, 1), (0.999, 0), (1.0, 8192)],
)
def test_a_truncated_outbox_opens_with_every_complete_row_salvaged(
    healthy_file: Path,
    tmp_path: Path,
    fraction: float,
    garbage: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    size = healthy_file.stat().st_size
    keep = int(size * fraction)
    state = tmp_path / "state"
    damaged_copy(healthy_file, state, keep, garbage, seed=keep)

    with caplog.at_level(logging.WARNING, logger="outpost.outbox"):
        outbox = DiskOutbox(state)
    try:
        salvaged = read_everything(outbox)
        report = outbox.recovery
        # Whatever came back is original rows, whole and in their order.
        assert salvaged == [line for line in ORIGINAL if line in set(salvaged)]
        if fraction >= 0.25:  # rows on pages before the cut come back (the header survives)
            assert len(salvaged) >= N * fraction * 0.9, report
        if report is not None:
            aside = list(state.glob("outbox.sqlite3.corrupt-*"))
            assert aside == [report.moved_to]
            assert report.recovered == len(salvaged) + outbox.dropped_damaged
            assert "damaged" in caplog.text and f"recovered {report.recovered}" in caplog.text
            if report.recovered:  # else the header is gone: nothing known about the rows
                # An estimate: a damaged page can hide or repeat a page's worth of rows.
                accounted = report.recovered + report.lost_estimate + report.bad_rows
                assert abs(accounted - N) <= 40, report
        else:  # the cut missed every row's cells, or only changed bytes the checksum catches
            assert len(salvaged) + outbox.dropped_damaged == N
        # And the fresh outbox works.
        outbox.append(["after,recovery=1 v=1"])
        outbox.commit()
        assert len(outbox) == len(salvaged) + 1
    finally:
        outbox.close()
    reopened = DiskOutbox(state)
    try:
        assert reopened.recovery is None
        assert read_everything(reopened)[-1] == "after,recovery=1 v=1"
    finally:
        reopened.close()


def test_garbage_in_the_middle_of_the_file_loses_only_the_pages_it_hit(
    healthy_file: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    data = bytearray(healthy_file.read_bytes())
    middle = len(data) // 2 // 4096 * 4096
    data[middle : middle + 8192] = random.Random(1).randbytes(8192)  # two pages
    (state / "outbox.sqlite3").write_bytes(bytes(data))

    outbox = DiskOutbox(state)
    try:
        salvaged = read_everything(outbox)
        assert outbox.recovery is not None
        assert salvaged == [line for line in ORIGINAL if line in set(salvaged)]
        assert len(salvaged) >= N - 200  # two pages hold about 70 rows
        assert salvaged[-1] == ORIGINAL[-1]  # reading resumed after the damage
    finally:
        outbox.close()


def test_a_changed_byte_that_quick_check_misses_is_caught_by_the_checksum(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    outbox = DiskOutbox(state)
    outbox.append(["m v=1234i 1", "m v=5678i 2"])
    outbox.close()
    path = state / "outbox.sqlite3"
    data = path.read_bytes()
    at = data.rindex(b"v=5678i")
    path.write_bytes(data[:at] + b"v=9678i" + data[at + 7 :])  # a flipped digit, same size

    outbox = DiskOutbox(state)
    try:
        assert outbox.recovery is None  # the file's structure is sound
        assert read_everything(outbox) == ["m v=1234i 1"]
        assert outbox.dropped_damaged == 1 and len(outbox) == 1
    finally:
        outbox.close()


def test_a_busy_outbox_is_never_mistaken_for_a_damaged_one(tmp_path: Path) -> None:
    outbox = DiskOutbox(tmp_path)
    try:
        outbox.append(["m v=1"])
        outbox.commit()
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            DiskOutbox(tmp_path)
        assert not list(tmp_path.glob("*.corrupt-*"))
        assert len(outbox) == 1
    finally:
        outbox.close()


def test_a_file_that_is_not_an_outbox_is_moved_aside(tmp_path: Path) -> None:
    other = sqlite3.connect(tmp_path / "outbox.sqlite3")
    other.execute("CREATE TABLE lines (x)")
    other.commit()
    other.close()
    outbox = DiskOutbox(tmp_path)
    try:
        assert outbox.recovery is not None and "not an outbox" in outbox.recovery.problem
        assert len(outbox) == 0
    finally:
        outbox.close()
