"""Progress of long CLI work on stderr: how many, how fast, for how long.

While the work runs, a line is redrawn in place at most twice a second, and
only when stderr is a terminal (``live``) or when asked (``--progress``: then
each update is a line of its own, for a log). Work done in under half a second
shows nothing until the final line, which is always printed::

    replaying 120,000/500,000 readings (24%), 85,211/s, 1.4 s
    replayed 500,000 readings, 12 alert events in 5.9 s (84,700/s)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

UPDATE_EVERY = 0.5  # seconds between redraws
_CLEAR = "\x1b[K"  # erase to the end of the terminal line


def elapsed_text(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


def rate_text(count: int, seconds: float) -> str:
    rate = count / seconds if seconds > 0 else 0.0
    return f"{rate:,.0f}/s" if rate >= 10 else f"{rate:.1f}/s"


class Progress:
    """``update(done)`` as the work goes, ``finish(done)`` once at the end."""

    def __init__(
        self,
        doing: str,
        done_verb: str,
        unit: str,
        out: TextIO,
        *,
        live: bool,
        each_line: bool = False,
        total: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.doing, self.done_verb, self.unit, self.out = doing, done_verb, unit, out
        self.live, self.each_line, self.total, self._clock = live, each_line, total, clock
        self.started = clock()
        self._next = self.started + UPDATE_EVERY
        self._drawn = False

    def update(self, done: int, extra: str = "") -> None:
        if not (self.live or self.each_line):
            return
        now = self._clock()
        if now < self._next:
            return
        self._next = now + UPDATE_EVERY
        seconds = now - self.started
        count = f"{done:,}/{self.total:,}" if self.total else f"{done:,}"
        share = f" ({done * 100 // self.total}%)" if self.total else ""
        line = (
            f"{self.doing} {count} {self.unit}{share}{extra}, "
            f"{rate_text(done, seconds)}, {elapsed_text(seconds)}"
        )
        self._write(line, final=False)

    def finish(self, done: int, extra: str = "") -> None:
        seconds = self._clock() - self.started
        self._write(
            f"{self.done_verb} {done:,} {self.unit}{extra} in {elapsed_text(seconds)} "
            f"({rate_text(done, seconds)})",
            final=True,
        )

    def clear(self) -> None:
        """Take the live line away (a phase ends and the next one reports)."""
        if self.live and self._drawn:
            print(f"\r{_CLEAR}", end="", file=self.out, flush=True)
            self._drawn = False

    def _write(self, line: str, *, final: bool) -> None:
        if self.live:
            end = "\n" if final else ""
            print(f"\r{line}{_CLEAR}", end=end, file=self.out, flush=True)
            self._drawn = not final
        else:
            print(line, file=self.out, flush=True)
