"""Real processes for the Modbus tests: pymodbus's server serving the shipped profiles
(``tests/modbus/simserver.py``) on TCP, or on one end of a ``socat`` pty pair (RTU).

| fixture | gives |
|---|---|
| `modbus_tcp` | ``start(*args) -> ModbusSim``: a simulator on a free TCP port |
| `modbus_rtu` | ``start(*args) -> RtuLine``: a pty pair and a simulator on its far end; |
|              | ``.port`` is the end the gateway opens |

Each process is stopped by its PID when the test ends (``.kill()`` earlier plays a
dead device).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.services import Service, ServiceError

REPO = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


class ModbusSim(Service):
    """``python -m tests.modbus.simserver --tcp 127.0.0.1:PORT …``."""

    name = "modbus-sim"
    binary = sys.executable

    def __init__(self, *args: str) -> None:
        super().__init__()
        self.args = list(args)

    def command(self) -> list[str]:
        return [sys.executable, "-m", "tests.modbus.simserver", "--tcp",
                f"127.0.0.1:{self.port}", *self.args]  # fmt: skip

    def env(self) -> dict[str, str]:
        return _env()

    def probe(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
            return True

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


class RtuLine:
    """A pty pair (socat) with the simulator on one end; the gateway opens ``port``."""

    def __init__(self, workdir: Path, *args: str) -> None:
        if shutil.which("socat") is None:
            raise ServiceError("socat not found on PATH (apt-get install socat)")
        self.device_end, self.port = workdir / "ttySIM", workdir / "ttyGW"
        self.log = workdir / "rtu.log"
        self._log = open(self.log, "ab")  # noqa: SIM115 - closed in close()
        self.socat = subprocess.Popen(
            ["socat", f"pty,raw,echo=0,link={self.device_end}", f"pty,raw,echo=0,link={self.port}"],
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        self._wait(lambda: self.device_end.exists() and self.port.exists(), "socat's ptys")
        self.sim = subprocess.Popen(
            [sys.executable, "-m", "tests.modbus.simserver", "--rtu", str(self.device_end), *args],
            stdout=subprocess.PIPE, stderr=self._log, env=_env(), start_new_session=True,
        )  # fmt: skip
        assert self.sim.stdout is not None
        line = self.sim.stdout.readline()
        if b"serving" not in line:
            self.close()
            raise ServiceError(f"the RTU simulator did not start: {self.log.read_text()}")

    def _wait(self, ready: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + 10
        while not ready():
            if time.monotonic() > deadline:
                self.close()
                raise ServiceError(f"{what} did not appear: {self.log.read_text()}")
            time.sleep(0.02)

    def close(self) -> None:
        for proc in (getattr(self, "sim", None), self.socat):
            if proc is not None and proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        sim = getattr(self, "sim", None)
        if sim is not None and sim.stdout is not None:
            sim.stdout.close()
        self._log.close()


@pytest.fixture
def modbus_tcp() -> Iterator[Callable[..., ModbusSim]]:
    started: list[ModbusSim] = []

    def start(*args: str) -> ModbusSim:
        sim = ModbusSim(*args)
        started.append(sim)
        return sim.start()

    yield start
    for sim in started:
        sim.close()


@pytest.fixture
def modbus_rtu(tmp_path: Path) -> Iterator[Callable[..., RtuLine]]:
    lines: list[RtuLine] = []

    def start(*args: str) -> RtuLine:
        line = RtuLine(tmp_path, *args)
        lines.append(line)
        return line

    yield start
    for line in lines:
        line.close()
