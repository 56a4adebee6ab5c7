"""Run ``outpost`` as the user does: a real process, its exit code and what it printed."""

from __future__ import annotations

import os
import re
import select
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

# `python -m gateway`, and the console script pip installed beside the interpreter.
MODULE = [sys.executable, "-m", "gateway"]
ENTRY = Path(sys.executable).parent / "outpost"

PROBLEM = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+):(?P<col>\d+): (?P<message>.+)$")


def outpost(
    *args: str,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*MODULE, *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def problems(text: str) -> list[tuple[str, int, str]]:
    """(file name, line, message) of every ``file:line:col: message`` line; fails on others."""
    found = []
    for line in lines(text):
        match = PROBLEM.match(line)
        assert match, f"not file:line:col: message: {line!r}"
        found.append((Path(match["file"]).name, int(match["line"]), match["message"]))
    return found


def in_pty(
    argv: Sequence[str],
    *,
    cwd: Path,
    stdout_too: bool = False,
    typed: str = "",
    timeout: float = 60,
) -> tuple[int, str, str]:
    """Run ``argv`` with stdin and stderr (with ``stdout_too`` stdout as well) on a terminal.

    Returns (exit code, what the terminal showed, stdout when it was not the terminal).
    ``typed`` is typed on the terminal at once; the line discipline hands it to the
    program line by line, as a person's answers.
    """
    master, slave = os.openpty()
    with tempfile.TemporaryFile() as stdout:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            stdin=slave,
            stdout=slave if stdout_too else stdout,
            stderr=slave,
            env={**os.environ, "TERM": "xterm"},
        )
        os.close(slave)
        if typed:
            os.write(master, typed.encode())
        shown = bytearray()
        deadline = time.monotonic() + timeout
        try:
            while True:
                assert time.monotonic() < deadline, f"{argv} still running:\n{shown.decode()}"
                ready, _, _ = select.select([master], [], [], 0.1)
                if not ready:
                    if proc.poll() is not None:
                        break
                    continue
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the program and its children closed the terminal
                    break
                if not chunk:
                    break
                shown += chunk
            code = proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            os.close(master)
        stdout.seek(0)
        out = stdout.read().decode()
    return code, shown.decode(errors="replace"), out
