"""Reading the YAML files the gateway is given (gateway/yamlfiles.py): what is not a
small regular UTF-8 file is a ``file:line:col`` problem, found without blocking and
without reading more than the size limit."""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path

import pytest

from gateway.yamlfiles import read_text
from rules.yamlsrc import MAX_BYTES, SourceError


def refused(path: Path) -> str:
    with pytest.raises(SourceError) as caught:
        read_text(path)
    [problem] = caught.value.problems
    return str(problem)


def test_a_fifo_is_refused_at_once_instead_of_waiting_for_a_writer(tmp_path) -> None:
    fifo = tmp_path / "rules.yaml"
    os.mkfifo(fifo)
    started = time.monotonic()
    assert refused(fifo) == f"{fifo}:1:1: cannot read: not a regular file"
    assert time.monotonic() - started < 1


def test_a_folder_and_a_missing_file_are_refused(tmp_path) -> None:
    assert refused(tmp_path) == f"{tmp_path}:1:1: cannot read: not a regular file"
    missing = tmp_path / "missing.yaml"
    assert refused(missing) == f"{missing}:1:1: cannot read: No such file or directory"


def test_a_huge_file_is_refused_after_reading_just_past_the_limit(tmp_path) -> None:
    huge = tmp_path / "huge.yaml"
    with huge.open("wb") as f:
        f.truncate(8 * 2**30)  # 8 GiB, sparse: nothing on disk
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert refused(huge) == f"{huge}:1:1: file is larger than 1 MiB, the limit for a YAML file"
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 16 * 1024


def test_the_limit_itself_is_read_whole(tmp_path) -> None:
    exactly = tmp_path / "exactly.yaml"
    exactly.write_bytes(b"a: 1\n#" + b"x" * (MAX_BYTES - 6))
    assert len(read_text(exactly)) == MAX_BYTES


def test_bytes_that_are_not_utf8_are_refused_at_their_line(tmp_path) -> None:
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("a: 1\nb: 2\nroom: K\xfcche\n".encode("latin-1"))
    assert refused(latin1) == f"{latin1}:3:1: not UTF-8 text"
