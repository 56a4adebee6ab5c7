"""What one process costs, read from /proc: CPU time, memory, bytes written to disk."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of the whole process (all its threads). Still readable once the
    process has exited, as long as its parent has not reaped it."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def memory_kib(pid: int) -> dict[str, int]:
    """``VmHWM`` (peak RSS) and ``VmRSS`` in KiB; empty once the process has exited."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    return {
        key: int(rest.split()[0])
        for key, _, rest in (line.partition(":") for line in lines)
        if key in ("VmHWM", "VmRSS")
    }


def write_bytes(pid: int) -> int:
    """Bytes the process caused to be written to storage (``/proc/<pid>/io``)."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/{pid}/io has no write_bytes (kernel without task I/O accounting)")


@dataclass
class Usage:
    cpu_seconds: float
    peak_rss_kib: int


@dataclass
class Watch:
    """CPU used by a process between :meth:`start` and :meth:`stop`, and its peak RSS.

    Memory is sampled every ``interval`` s on a thread: a process that exits by itself
    (``mosquitto_sub -C``) leaves its CPU times in /proc until it is reaped, but not its
    memory. ``rss`` keeps every sample as (wall-clock time, VmRSS KiB).
    """

    pid: int
    interval: float = 0.1
    rss: list[tuple[float, int]] = field(default_factory=list)

    def start(self) -> Watch:
        self._cpu0 = cpu_seconds(self.pid)
        self._peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._sample_once()
        self._thread.start()
        return self

    def _sample_once(self) -> bool:
        mem = memory_kib(self.pid)
        if not mem:
            return False
        self._peak = max(self._peak, mem["VmHWM"])
        self.rss.append((time.time(), mem["VmRSS"]))
        return True

    def _sample(self) -> None:
        while not self._stop.wait(self.interval) and self._sample_once():
            pass

    def stop(self) -> Usage:
        self._stop.set()
        self._thread.join()
        self._sample_once()
        return Usage(cpu_seconds(self.pid) - self._cpu0, self._peak)
