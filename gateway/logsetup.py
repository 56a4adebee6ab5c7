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

:class:`FirstTraceback` is how an unexpected exception that input can repeat is
logged: its traceback the first time it comes from a line of code, never again.

Text from outside — a topic, a device id, a payload fragment, an answer from a
server — goes through :func:`printable` before it is logged, so a newline or a
terminal escape in it cannot forge a log line or repaint the screen. The message
of an exception in a traceback is escaped the same way by every layout.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
import traceback
from collections.abc import Callable
from types import TracebackType
from typing import Literal

from rules import rfc3339

HELD = " (and %d more since the last report)"
# asyncio logs every failed accept (EMFILE: ~100 tracebacks per readiness event); aiohttp
# logs every request it cannot parse and every failing handler.
LIBRARY_LOGGERS = ("asyncio", "aiohttp.server", "aiohttp.web", "aiohttp.internal",
                   "aiohttp.access")
LIBRARY_LOG_EVERY = 10.0

__all__ = ["FirstTraceback", "JsonFormatter", "Throttled", "ThrottledFilter", "printable",
           "setup_logging", "throttle_library_logs"]

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]


def printable(text: object, limit: int = 200) -> str:
    """``text`` fit for one log line: cut to ``limit`` characters, and every character
    that is not printable (newline, control and format characters, a lone surrogate)
    written as its backslash escape (``\\n``, ``\\x1b``, ``\\u202e``, ``\\ud800``)."""
    text = text if isinstance(text, str) else str(text)
    if len(text) > limit:
        text = text[:limit] + "…"
    if text.isprintable():
        return text
    return "".join(
        ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text
    )


def _traceback_lines(te: traceback.TracebackException) -> list[str]:
    """The lines ``traceback`` prints, with each exception's own message made printable."""
    lines: list[str] = []
    if te.__cause__ is not None:
        lines += _traceback_lines(te.__cause__)
        lines.append("\nThe above exception was the direct cause of the following exception:\n\n")
    elif te.__context__ is not None and not te.__suppress_context__:
        lines += _traceback_lines(te.__context__)
        lines.append("\nDuring handling of the above exception, another exception occurred:\n\n")
    if te.stack:
        lines.append("Traceback (most recent call last):\n")
        lines += te.stack.format()
    lines += [printable(line.rstrip("\n"), 2000) + "\n" for line in te.format_exception_only()]
    return lines


def format_exception(ei: ExcInfo) -> str:
    """A traceback as ``logging`` shows it, but whose exception messages cannot forge lines."""
    if ei[1] is None:
        return ""
    te = traceback.TracebackException(type(ei[1]), ei[1], ei[2])
    return "".join(_traceback_lines(te)).rstrip("\n")


class TextFormatter(logging.Formatter):
    """``logging.Formatter`` with tracebacks from :func:`format_exception`."""

    def formatException(self, ei: ExcInfo) -> str:
        return format_exception(ei)


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


class JsonFormatter(TextFormatter):
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


class JournaldFormatter(TextFormatter):
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
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
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


class FirstTraceback:
    """Logs the traceback of an exception the first time it is raised at a line of code.

    A message that meets a bug is dead-lettered and counted each time; its traceback
    is needed once, not once per message of a flood.
    """

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger
        self._seen: set[tuple[str, str, int | None]] = set()

    def log(self, exc: BaseException, msg: str, *args: object) -> None:
        frames = traceback.extract_tb(exc.__traceback__)
        place = (type(exc).__name__, frames[-1].filename, frames[-1].lineno) if frames else (
            type(exc).__name__, "", None
        )
        if place in self._seen:
            return
        self._seen.add(place)
        self._logger.error(msg, *args, exc_info=exc)
