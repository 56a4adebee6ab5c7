"""Serial framings: incremental, pure parsers from bytes to frames (dicts).

``framer.feed(data) -> list[frame]`` takes whatever a ``read()`` returned —
half a line, ten lines, garbage — and returns the complete frames in it. It
never raises: anything it cannot use is counted in ``framer.counters`` and the
first bytes of the line are kept in ``framer.rejected`` (bounded; the bridge
drains it to the dead-letter topic).

Framings (``--framing``):

- ``jsonlines``: one JSON object per line, ``{"t": 21.5, "h": 40}``.
- ``kv``: ``t=21.5,h=40`` (``,`` between pairs, ``=`` inside; spaces trimmed).
- ``csv``: comma-separated values under a header line, ``t,h`` then ``21.5,40``.
  The first line is the header; later, a line without any number is taken as
  a new header (a device that rebooted and printed its header again).

In every framing a JSON object line is also accepted as is, so a device can
answer a command with ``{"ack": "<id>", "ok": true}`` whatever its framing.

Lines end with ``\\n`` (a ``\\r`` before it is dropped). Counters: ``lines``,
``frames``, ``bad_lines`` (not in the framing), ``undecodable_lines`` (not
UTF-8: often the wrong baud rate), ``overlong_lines`` (longer than
``max_line``: the rest up to the next newline is discarded), ``partial_lines``
(a line cut by :meth:`reset`, when the port closes), ``garbage_bytes`` (bytes
of every rejected line).
"""

from __future__ import annotations

import csv
import json
import math
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

from devices.model import Value

Frame = dict[str, Any]

DEFAULT_MAX_LINE = 4096
_EXCERPT = 256


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: str
    line: bytes  # the first bytes of the line


class LineFramer:
    """Splits a byte stream into lines and hands each to :meth:`parse_line`."""

    name = "lines"

    def __init__(
        self,
        max_line: int = DEFAULT_MAX_LINE,
        counters: Counter[str] | None = None,
        max_rejected: int = 100,
    ) -> None:
        if max_line < 16:
            raise ValueError("max_line must be at least 16 bytes")
        self.max_line = max_line
        self.counters: Counter[str] = counters if counters is not None else Counter()
        self.rejected: deque[Rejected] = deque(maxlen=max_rejected)
        self._rest = b""
        self._discarding = False  # inside an over-long line, until its newline

    def feed(self, data: bytes) -> list[Frame]:
        frames: list[Frame] = []
        *lines, rest = (self._rest + data).split(b"\n")
        if self._discarding:
            if not lines:  # still inside the over-long line
                self.counters["garbage_bytes"] += len(rest)
                self._rest = b""
                return frames
            self.counters["garbage_bytes"] += len(lines.pop(0)) + 1
            self._discarding = False
        for line in lines:
            frame = self._line(line)
            if frame is not None:
                frames.append(frame)
        if len(rest) > self.max_line:
            self._reject("overlong_lines", rest)
            self._discarding = True
            rest = b""
        self._rest = rest
        return frames

    def reset(self) -> None:
        """The stream broke (port closed): a half-received line is counted and dropped."""
        if self._rest.strip():
            self._reject("partial_lines", self._rest)
        self._rest = b""
        self._discarding = False

    def _line(self, raw: bytes) -> Frame | None:
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        if len(raw) > self.max_line:
            self._reject("overlong_lines", raw)
            return None
        try:
            text = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            self._reject("undecodable_lines", raw)
            return None
        if not text:
            return None
        self.counters["lines"] += 1
        frame = _json_object(text) if text.startswith("{") else self.parse_line(text)
        if frame is None:
            self._reject("bad_lines", raw)
            return None
        if frame:
            self.counters["frames"] += 1
            return frame
        return None  # a header, or a line that is only a separator

    def parse_line(self, text: str) -> Frame | None:
        """A frame from one line; ``{}`` for a line that is no data but fine; None if bad."""
        return None

    def _reject(self, reason: str, raw: bytes) -> None:
        self.counters[reason] += 1
        self.counters["garbage_bytes"] += len(raw)
        self.rejected.append(Rejected(reason, raw[:_EXCERPT]))


def _refuse_constant(name: str) -> Any:
    raise ValueError(name)


def _json_object(text: str) -> Frame | None:
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def scalar(text: str) -> Value:
    """A cell of a kv/csv line: a finite number, ``true``/``false``, else the text."""
    text = text.strip()
    try:
        number = float(text)
    except ValueError:
        lowered = text.lower()
        if lowered in ("true", "false"):
            return lowered == "true"
        return text
    return number if math.isfinite(number) else text


class JsonLinesFramer(LineFramer):
    name = "jsonlines"
    # Every JSON line is handled by LineFramer._line; anything else is bad.


class KvFramer(LineFramer):
    name = "kv"

    def parse_line(self, text: str) -> Frame | None:
        frame: Frame = {}
        for pair in text.split(","):
            if not pair.strip():
                continue
            key, sep, value = pair.partition("=")
            key = key.strip()
            if not sep or not key:
                return None
            frame[key] = scalar(value)
        return frame or None


class CsvFramer(LineFramer):
    name = "csv"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header: list[str] | None = None

    def parse_line(self, text: str) -> Frame | None:
        try:
            cells = next(csv.reader([text]))
        except (csv.Error, StopIteration):
            return None
        values = [scalar(cell) for cell in cells]
        is_header = not any(isinstance(v, float) for v in values)
        if self.header is None or is_header:
            names = [cell.strip() for cell in cells]
            if not all(names) or len(set(names)) != len(names):
                return None
            self.header = names
            self.counters["headers"] += 1
            return {}
        if len(values) != len(self.header):
            return None
        return dict(zip(self.header, values, strict=True))


FRAMINGS: dict[str, type[LineFramer]] = {
    "jsonlines": JsonLinesFramer,
    "kv": KvFramer,
    "csv": CsvFramer,
}


def make_framer(
    name: str, max_line: int = DEFAULT_MAX_LINE, counters: Counter[str] | None = None
) -> LineFramer:
    try:
        cls = FRAMINGS[name]
    except KeyError:
        raise KeyError(f"unknown framing {name!r}; known: {', '.join(FRAMINGS)}") from None
    return cls(max_line=max_line, counters=counters)
