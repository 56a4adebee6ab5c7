"""Logging for a terminal, for journald, or as JSON lines.

``setup_logging(level, fmt)`` picks one of three layouts:

- ``text`` on a terminal: ``2026-11-27 10:00:00,123 INFO    outpost.mqtt: connected …``
- ``text`` under systemd (``JOURNAL_STREAM`` set, stderr is the journal): no
  timestamp (journald adds its own) and a ``<N>`` syslog-priority prefix, which
  journald turns into the entry's priority — ``journalctl -p warning -u outpost``
  then shows warnings and errors only, and errors are highlighted.
- ``json``: one JSON object a line (``ts``, ``level``, ``logger``, ``msg``, and
  ``exc`` with the traceback), for log shippers; also prefixed under journald.

:class:`Throttled` is how a line that can repeat thousands of times a second
(a dead letter, a failing write, a full buffer) is logged: at most once per
key per interval, the next line saying how many were held back meanwhile.
:func:`setup_logging` puts the same throttle on asyncio's and aiohttp's own
loggers (:class:`ThrottledFilter`), which log per failed accept or bad request.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable
from typing import Literal

from rules import rfc3339

__all__ = ["JsonFormatter", "Throttled", "ThrottledFilter", "setup_logging",
           "throttle_library_logs"]

HELD = " (and %d more since the last report)"
# asyncio logs every failed accept (EMFILE: ~100 tracebacks per readiness event); aiohttp
# logs every request it cannot parse and every failing handler.
LIBRARY_LOGGERS = ("asyncio", "aiohttp.server", "aiohttp.web", "aiohttp.internal",
                   "aiohttp.access")
LIBRARY_LOG_EVERY = 10.0

# syslog priorities (sd-daemon(3)): journald reads "<N>" at the start of each line.
_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3,
             logging.CRITICAL: 2}


def _priority(levelno: int) -> int:
    for threshold in (logging.CRITICAL, logging.ERROR, logging.WARNING, logging.INFO):
        if levelno >= threshold:
            return _PRIORITY[threshold]
    return 7


def _created_ns(record: logging.LogRecord) -> int:
    """The record's time in ns; ``created`` is float seconds, so it is first rounded to
    whole microseconds, as ``datetime.fromtimestamp`` does (x.123 stored as x.12299999
    still prints .123)."""
    frac, whole = math.modf(record.created)
    return int(whole) * 1_000_000_000 + round(frac * 1e6) * 1000


class JsonFormatter(logging.Formatter):
    def __init__(self, journald: bool = False) -> None:
        super().__init__()
        self._journald = journald

    def format(self, record: logging.LogRecord) -> str:
        entry = {"ts": rfc3339(_created_ns(record)),
                 "level": record.levelname.lower(), "logger": record.name,
                 "msg": record.getMessage()}
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        text = json.dumps(entry, ensure_ascii=False)
        return f"<{_priority(record.levelno)}>{text}" if self._journald else text


class JournaldFormatter(logging.Formatter):
    """``<N>logger: message``; a traceback stays in the same journal entry's lines."""

    def __init__(self) -> None:
        super().__init__("%(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in super().format(record).splitlines())


def under_journald() -> bool:
    """Whether stderr is connected to the journal (systemd sets ``JOURNAL_STREAM``)."""
    stream = os.environ.get("JOURNAL_STREAM", "")
    if not stream:
        return False
    try:
        st = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError):
        return False
    return stream == f"{st.st_dev}:{st.st_ino}"


def setup_logging(level: str, fmt: Literal["text", "json"] = "text") -> None:
    """Configure the root logger once (replaces any handler set before)."""
    journald = under_journald()
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter(journald))
    elif journald:
        handler.setFormatter(JournaldFormatter())
    else:
        handler.setFormatter(logging.Formatter(
            "%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    throttle_library_logs()


class Throttled:
    """Logs each key at most once per ``interval`` seconds.

    Lines in between are counted, not logged; the next line logged for the key
    ends with ``(and N more since the last report)``. ``count`` is how many
    things one call stands for (a line about 40 dropped readings counts 40).
    """

    def __init__(
        self,
        logger: logging.Logger,
        interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._interval = interval
        self._clock = clock
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def due(self, key: str, count: int = 1) -> int | None:
        """None while ``key`` was reported within the interval (the line is counted);
        otherwise how many lines were held back since its last report."""
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self._interval:
            self._held[key] = self._held.get(key, 0) + count
            return None
        self._last[key] = now
        return self._held.pop(key, 0)

    def log(self, key: str, level: int, msg: str, *args: object, count: int = 1) -> None:
        """Log ``msg % args`` unless ``key`` was logged within the interval."""
        held = self.due(key, count)
        if held is None:
            return
        if held:
            msg, args = msg + HELD, (*args, held)
        self._logger.log(level, msg, *args)


class ThrottledFilter(logging.Filter):
    """:class:`Throttled` for a library's own logger (asyncio, aiohttp), which we cannot
    change: each line is keyed by its first line of text before the arguments, so
    "socket.accept() out of system resource" repeated a thousand times a second is
    written once per interval, saying how many were held back."""

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._throttled = Throttled(logging.getLogger(__name__), interval, clock)

    def filter(self, record: logging.LogRecord) -> bool:
        first_line = str(record.msg).partition("\n")[0]
        held = self._throttled.due(f"{record.name}:{record.levelno}:{first_line}")
        if held is None:
            return False
        if held:
            record.msg, record.args = record.getMessage() + HELD % held, None
        return True


def throttle_library_logs(interval: float = LIBRARY_LOG_EVERY) -> None:
    """Put a :class:`ThrottledFilter` on the loggers of the libraries that log per
    connection or per accept (replacing one put there before)."""
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        for old in [f for f in logger.filters if isinstance(f, ThrottledFilter)]:
            logger.removeFilter(old)
        logger.addFilter(ThrottledFilter(interval))
