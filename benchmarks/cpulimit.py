"""Hold processes to a share of one core with a cgroup CPU quota, as a Raspberry Pi would.

cgroup v2 (a ``cgroup2`` mount offering the ``cpu`` controller): ``cpu.max`` "25000 100000".
cgroup v1 (a ``cgroup`` mount with the ``cpu`` controller): ``cpu.cfs_quota_us`` 25000 of
``cpu.cfs_period_us`` 100000. Creating a group needs root (or a delegated subtree).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from types import TracebackType

PERIOD_US = 100_000


class CpuLimitUnavailable(RuntimeError):
    """Neither cgroup interface can be used here; the message says why."""


def _mounts() -> list[tuple[str, str, set[str]]]:
    """(mount point, fs type, options) of every cgroup mount."""
    out = []
    for line in Path("/proc/mounts").read_text().splitlines():
        _dev, point, fstype, options, *_ = line.split()
        if fstype in ("cgroup", "cgroup2"):
            out.append((point, fstype, set(options.split(","))))
    return out


def _find() -> tuple[Path, int]:
    """The mount to create the group in and the cgroup version."""
    mounts = _mounts()
    for point, fstype, _ in mounts:
        controllers = Path(point, "cgroup.controllers")
        if (
            fstype == "cgroup2"
            and controllers.exists()
            and "cpu" in controllers.read_text().split()
        ):
            return Path(point), 2
    for point, fstype, options in mounts:
        if fstype == "cgroup" and "cpu" in options:
            return Path(point), 1
    found = ", ".join(f"{p} ({t})" for p, t, _ in mounts) or "no cgroup mounts"
    raise CpuLimitUnavailable(f"no cgroup with the cpu controller ({found})")


class CpuLimit:
    """``with CpuLimit(0.25) as limit: limit.add(pid)`` — at most a quarter of one core."""

    def __init__(self, share: float, name: str = "outpost-bench") -> None:
        self.quota_us = round(share * PERIOD_US)
        self.name = f"{name}-{os.getpid()}"

    def __enter__(self) -> CpuLimit:
        self.root, self.version = _find()
        self.path = self.root / self.name
        try:
            if self.version == 2:
                (self.root / "cgroup.subtree_control").write_text("+cpu")
                self.path.mkdir()
                (self.path / "cpu.max").write_text(f"{self.quota_us} {PERIOD_US}")
            else:
                self.path.mkdir()
                (self.path / "cpu.cfs_period_us").write_text(str(PERIOD_US))
                (self.path / "cpu.cfs_quota_us").write_text(str(self.quota_us))
        except OSError as exc:
            with contextlib.suppress(OSError):
                self.path.rmdir()
            raise CpuLimitUnavailable(
                f"cannot set a CPU quota in {self.path} (cgroup v{self.version}): {exc}"
            ) from exc
        return self

    @property
    def setting(self) -> str:
        if self.version == 2:
            return f"cpu.max {self.quota_us} {PERIOD_US}"
        return f"cpu.cfs_quota_us {self.quota_us} / cpu.cfs_period_us {PERIOD_US}"

    def add(self, pid: int) -> None:
        """Move a process, with all its threads, into the group."""
        (self.path / "cgroup.procs").write_text(str(pid))

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        for pid in (self.path / "cgroup.procs").read_text().split():
            with contextlib.suppress(OSError):  # gone meanwhile
                (self.root / "cgroup.procs").write_text(pid)
        self.path.rmdir()
