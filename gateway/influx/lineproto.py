"""Readings as line protocol that the database stores exactly — or a refusal that says why.

``temperature,device=gh-1,zone=north value=21.5 1795755841000000000``: the
measurement is the metric, ``device`` and the reading's tags are tags, and the
field is named by the value's type — numbers in ``value`` (always floats),
booleans in ``state``, strings in ``text`` — so types never collide.

Line protocol escapes ``,`` and space in a measurement, and ``,``, ``=`` and
space in tag keys, tag values and field keys, with a backslash; in a string
field ``"`` and ``\\`` are escaped. What a backslash in a *name* means differs
between servers, so the encoder speaks one :class:`Dialect` per server. Each
was worked out against the real server (influxd 1.6, VictoriaMetrics) and is
checked by ``tests/influx/test_escaping_roundtrip.py``, which writes arbitrary
text in batches and reads every name and value back:

- **InfluxDB 1.x and 2.x** keep a backslash in a name as it is, unless it
  precedes a character they unescape. So ``a\\,b`` is written ``a\\\\,b``, but
  a name cannot end in a backslash (it would escape the separator after it), a
  measurement cannot hold a backslash before ``,``, space, ``=`` or ``"`` (it is
  stored under a name no query finds, or a different one), and a tag that holds
  a backslash before a space can make InfluxDB read the *next* line into this
  one and reject both (its line splitter skips the character after every
  backslash, its name parser does not): such a line is refused when it would.
  InfluxDB refuses the tag key ``time`` and drops a field ``time``; InfluxDB 2
  reserves names starting with ``_``. A series key (measurement, tags and
  field name) is at most 65535 bytes.
- **VictoriaMetrics** reads ``\\\\`` as one backslash, so every backslash is
  escaped and any name can be written. It stores numbers only: a text reading
  is refused (an alert point is written without its message), booleans are 1
  and 0, a number keeps about 12 significant digits and one closer to zero
  than 1e-290 is refused (it would come back 0). It takes the tag key
  ``__name__`` for the metric name (and drops it), cuts label names over 256
  bytes and label values (and the metric name ``<measurement>_<field>``) over
  16 KiB, and keeps 30 labels besides the name (its ``db`` label among them).

Everywhere: a name may not be empty, start a line with ``#`` (a comment), hold
a control character (U+0000–U+001F, U+007F) or a lone surrogate (not UTF-8);
numbers must be finite; text may not hold a line break or a lone surrogate.
A refusal is :class:`Unwritable`, with ``reason`` ``unstorable_name`` or
``unstorable_value``: the pipeline dead-letters the reading, and the rest of
its batch is written.

Plain names (ASCII letters, digits, ``_``, ``-``, ``.``) need no escaping, and a
series is checked and escaped once: :class:`LineEncoder` caches the line's
prefix per series, so a cached reading costs one dict lookup and one format.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from devices.model import Reading, Value

UNSTORABLE_NAME = "unstorable_name"
UNSTORABLE_VALUE = "unstorable_value"

_PLAIN = re.compile(r"[A-Za-z0-9_.\-]+").fullmatch
_UNWRITABLE_CHAR = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]").search
_LINE_BREAK_OR_SURROGATE = re.compile(r"[\n\r\ud800-\udfff]").search
SMALLEST_NUMBER = 1e-290  # VictoriaMetrics: nonzero numbers closer to zero become 0
_STRING_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"'})
# The fields a reading can have, by value type; the longest bounds a series key.
READING_FIELDS = ("value", "state", "text")


class Unwritable(ValueError):
    """A point the database cannot store exactly; ``reason`` is the dead-letter reason."""

    def __init__(self, message: str, reason: str = UNSTORABLE_NAME) -> None:
        super().__init__(message)
        self.reason = reason


def _show(text: str) -> str:
    return repr(text[:60] + ("…" if len(text) > 60 else ""))


def _common_checks(kind: str, text: str) -> None:
    if not text:
        raise Unwritable(f"empty {kind}")
    bad = _UNWRITABLE_CHAR(text)
    if bad is not None:
        what = "a lone surrogate" if bad.group() >= "\ud800" else "a control character"
        raise Unwritable(f"{kind} {_show(text)} contains {what}")


def _number(value: float) -> str:
    try:
        text = repr(float(value))
    except OverflowError:
        raise Unwritable(f"number {str(value)[:40]}… is too large", UNSTORABLE_VALUE) from None
    if text[-1] in "fn":  # inf, -inf, nan: every finite float's repr ends in a digit
        raise Unwritable(f"non-finite number {text}", UNSTORABLE_VALUE)
    return text


class Dialect:
    """How one server reads line protocol: escaping, and what it cannot store.

    ``measurement``, ``tag_key``, ``tag_value`` and ``field_key`` return the
    escaped text or raise :class:`Unwritable`; ``series_checks`` refuses a whole
    series (length and count limits); ``number`` and ``text`` format field
    values; ``line_check`` runs on finished lines whose prefix ``fragile`` marked.
    """

    name = ""
    number = staticmethod(_number)
    smallest_number = 0.0  # nonzero numbers closer to zero are refused by ``number``
    numbers_only = False  # text values are refused

    def measurement(self, text: str) -> str:
        raise NotImplementedError

    def tag_key(self, text: str) -> str:
        raise NotImplementedError

    def tag_value(self, key: str, text: str) -> str:
        raise NotImplementedError

    def field_key(self, text: str) -> str:
        _common_checks("field name", text)
        if not _PLAIN(text):
            raise Unwritable(f"field name {_show(text)} is not a plain name")
        return text

    def series_checks(
        self, measurement: str, key: str, tags: list[tuple[str, str]], fields: Iterable[str]
    ) -> None:
        """Refuse a series the server would cut or reject as a whole."""

    def fragile(self, key: str) -> bool:
        """Whether lines of this series need :meth:`line_check`."""
        return False

    def line_check(self, line: str) -> None:
        """Refuse a finished line that this server would misread in a batch."""

    def text(self, value: str) -> str:
        if "\n" in value or "\r" in value or not value.isascii():
            bad = _LINE_BREAK_OR_SURROGATE(value)
            if bad is not None:
                what = "a lone surrogate" if bad.group() >= "\ud800" else "a line break"
                raise Unwritable(f"text value {_show(value)} contains {what}", UNSTORABLE_VALUE)
        if '"' in value or "\\" in value:
            value = value.translate(_STRING_ESCAPES)
        return f'"{value}"'


class InfluxDialect(Dialect):
    """InfluxDB 1.x (``version=1``) and 2.x (``version=2``): one parser, 2.x reserves ``_``."""

    _MEASUREMENT_ESCAPES = str.maketrans({",": r"\,", " ": r"\ "})
    _TAG_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})
    # A measurement is unescaped twice on its way to the index: a backslash before
    # any of these leaves it under a name that queries cannot find or a different one.
    _MEASUREMENT_BACKSLASH = re.compile(r'\\([, ="])').search
    MAX_SERIES_KEY = 65535  # measurement, tags, "#!~#" and the field name, in bytes

    def __init__(self, version: int) -> None:
        self.version = version
        self.name = f"InfluxDB {version}.x"

    def _name_checks(self, kind: str, text: str, *, is_value: bool = False) -> None:
        if not _PLAIN(text):
            _common_checks(kind, text)
            if text[-1] == "\\":
                raise Unwritable(
                    f"{kind} {_show(text)} ends with a backslash, which would escape the "
                    "separator after it"
                )
        if self.version == 2 and not is_value and text[0] == "_":
            raise Unwritable(f"{kind} {_show(text)} starts with _, reserved by InfluxDB 2")

    def measurement(self, text: str) -> str:
        self._name_checks("metric", text)
        if _PLAIN(text):
            return text
        if text[0] == "#":
            raise Unwritable(f"metric {_show(text)} starts with #, which makes the line a comment")
        bad = self._MEASUREMENT_BACKSLASH(text)
        if bad is not None:
            raise Unwritable(
                f"metric {_show(text)} has a backslash before {bad.group(1)!r}: "
                f"{self.name} would store it under a name its queries cannot find"
            )
        return text.translate(self._MEASUREMENT_ESCAPES)

    def tag_key(self, text: str) -> str:
        self._name_checks("tag key", text)
        if text == "time":
            raise Unwritable(f"tag key 'time' is refused by {self.name}")
        return text if _PLAIN(text) else text.translate(self._TAG_ESCAPES)

    def tag_value(self, key: str, text: str) -> str:
        if _PLAIN(text):
            return text
        self._name_checks(f"tag {key}", text, is_value=True)
        return text.translate(self._TAG_ESCAPES)

    def field_key(self, text: str) -> str:
        super().field_key(text)
        if text == "time" or (self.version == 2 and text[0] == "_"):
            raise Unwritable(f"field name {text!r} is dropped by {self.name}")
        return text

    def series_checks(
        self, measurement: str, key: str, tags: list[tuple[str, str]], fields: Iterable[str]
    ) -> None:
        size = len(key.encode()) + 4 + max(len(f) for f in fields)
        if size > self.MAX_SERIES_KEY:
            raise Unwritable(
                f"metric {_show(measurement)} with its tags makes a series key of {size} "
                f"bytes; {self.name} stores at most {self.MAX_SERIES_KEY}"
            )

    def fragile(self, key: str) -> bool:
        # Only a space after two backslashes (a name's backslash, then the escape) can
        # look unescaped to the line splitter; without one, its counting starts at the
        # real separator and the field after it is always read right.
        return "\\\\ " in key

    def line_check(self, line: str) -> None:
        if _runs_past_line_end(line):
            raise Unwritable(
                f"line {_show(line)} has a tag with a backslash before a space, and after it "
                f"quotes, = or , that would make {self.name} read the next line of a batch "
                "into this one and refuse both"
            )


def _runs_past_line_end(line: str) -> bool:
    """Whether InfluxDB's line splitter, reading ``line`` in a batch, would miss its end.

    The splitter finds line ends without parsing names: it skips the character
    after every backslash, starts counting ``=`` and ``,`` after the first space
    it sees, and treats a ``"`` as opening or closing a string when more ``=``
    than ``,`` were counted; a newline inside such a string does not end the
    line. A name parser reads ``\\\\ `` in a tag as a backslash and an escaped
    space, the splitter as a pair and a real space: the two then disagree, and
    quotes, ``=`` or ``,`` in the rest of the line can leave the splitter inside a
    "string" at the end of the line.
    """
    counting = quoted = False
    equals = commas = 0
    i, n = 0, len(line)
    while i < n:
        c = line[i]
        if c == "\\":
            i += 2
            continue
        if c == " ":
            counting = True
        elif counting:
            if not quoted and c == "=":
                equals += 1
            elif not quoted and c == ",":
                commas += 1
            elif c == '"' and equals > commas:
                quoted = not quoted
        i += 1
    return quoted


class VictoriaDialect(Dialect):
    """VictoriaMetrics: ``\\\\`` is one backslash, so any name can be escaped; numbers only."""

    name = "VictoriaMetrics"
    _ESCAPES = str.maketrans({"\\": "\\\\", ",": r"\,", "=": r"\=", " ": r"\ "})
    MAX_LABEL_NAME = 256  # bytes; longer label names are cut
    MAX_LABEL_VALUE = 16 * 1024  # bytes; longer values (and metric names) are cut
    MAX_LABELS = 30  # besides the metric name: the tags and the "db" label; more are dropped
    # Numbers are kept as decimals (about 12 significant digits) whose exponent ends
    # near -323: a nonzero number closer to zero than this may come back as 0.

    def _escape(self, kind: str, text: str) -> str:
        if _PLAIN(text):
            return text
        _common_checks(kind, text)
        return text.translate(self._ESCAPES)

    def measurement(self, text: str) -> str:
        if text[:1] == "#":
            raise Unwritable(f"metric {_show(text)} starts with #, which makes the line a comment")
        return self._escape("metric", text)

    def tag_key(self, text: str) -> str:
        if text == "__name__":
            raise Unwritable("tag key '__name__' is the metric name in VictoriaMetrics")
        escaped = self._escape("tag key", text)
        if len(text.encode()) > self.MAX_LABEL_NAME:
            raise Unwritable(
                f"tag key {_show(text)} is longer than {self.MAX_LABEL_NAME} bytes, "
                "which VictoriaMetrics cuts"
            )
        return escaped

    def tag_value(self, key: str, text: str) -> str:
        escaped = self._escape(f"tag {key}", text)
        if len(text) * 4 > self.MAX_LABEL_VALUE and len(text.encode()) > self.MAX_LABEL_VALUE:
            raise Unwritable(
                f"tag {key} {_show(text)} is longer than {self.MAX_LABEL_VALUE} bytes, "
                "which VictoriaMetrics cuts"
            )
        return escaped

    def series_checks(
        self, measurement: str, key: str, tags: list[tuple[str, str]], fields: Iterable[str]
    ) -> None:
        if len(tags) + 1 > self.MAX_LABELS:
            raise Unwritable(
                f"metric {_show(measurement)} has {len(tags)} tags with the device; "
                f"VictoriaMetrics keeps {self.MAX_LABELS}, its database label among them"
            )
        size = len(measurement.encode()) + 1 + max(len(f) for f in fields)
        if size > self.MAX_LABEL_VALUE:
            raise Unwritable(
                f"metric {_show(measurement)} makes a metric name of {size} bytes, "
                f"which VictoriaMetrics cuts at {self.MAX_LABEL_VALUE}"
            )

    def text(self, value: str) -> str:
        raise Unwritable(
            f"text value {_show(value)}: VictoriaMetrics stores numbers only", UNSTORABLE_VALUE
        )

    smallest_number = SMALLEST_NUMBER
    numbers_only = True

    @staticmethod
    def number(value: float) -> str:
        if value and -SMALLEST_NUMBER < value < SMALLEST_NUMBER:
            raise Unwritable(
                f"number {value!r} is closer to zero than VictoriaMetrics keeps (it stores 0)",
                UNSTORABLE_VALUE,
            )
        return _number(value)


INFLUXDB_1 = InfluxDialect(1)
INFLUXDB_2 = InfluxDialect(2)
VICTORIAMETRICS = VictoriaDialect()


class LineEncoder:
    """Encodes points for one :class:`Dialect`, caching each series' escaped prefix.

    The cache holds up to ``cache_size`` series (a gateway writes the same few
    thousand); past that it starts again. Refusals are not cached.
    """

    def __init__(self, dialect: Dialect = INFLUXDB_1, cache_size: int = 100_000) -> None:
        self.dialect = dialect
        self._smallest = dialect.smallest_number
        self._series: dict[tuple[str, str, tuple[tuple[str, str], ...]], tuple[str, bool]] = {}
        self._cache_size = cache_size

    def series_key(
        self, measurement: str, tags: Mapping[str, str], fields: Iterable[str] = READING_FIELDS
    ) -> tuple[str, bool]:
        """``measurement,tag=value…`` (tags by key, empty values left out) and whether
        finished lines need the dialect's line check."""
        d = self.dialect
        parts = [d.measurement(measurement)]
        kept = sorted((k, v) for k, v in tags.items() if v != "")  # no empty tags in InfluxDB
        for name, value in kept:
            parts.append(f"{d.tag_key(name)}={d.tag_value(name, value)}")
        key = ",".join(parts)
        d.series_checks(measurement, key, kept, fields)
        return key, d.fragile(key)

    def encode(self, reading: Reading) -> str:
        tags = reading.tags
        cache_key = (reading.metric, reading.device, tuple(tags.items()) if tags else ())
        series = self._series.get(cache_key)
        if series is None:
            if not reading.device:
                raise Unwritable("empty device")
            series = self.series_key(reading.metric, {**tags, "device": reading.device})
            if len(self._series) >= self._cache_size:
                self._series.clear()
            self._series[cache_key] = series
        key, fragile = series
        value = reading.value
        smallest = self._smallest
        # the common case: a finite float (x - x is nan for inf and nan) the server keeps
        if type(value) is float and value - value == 0.0 and not -smallest < value < smallest:
            line = f"{key} value={value!r} {reading.ts}"
        elif value is True:
            line = f"{key} state=true {reading.ts}"
        elif value is False:
            line = f"{key} state=false {reading.ts}"
        elif isinstance(value, str):
            line = f"{key} text={self.dialect.text(value)} {reading.ts}"
        else:
            line = f"{key} value={self.dialect.number(value)} {reading.ts}"
        if fragile:
            self.dialect.line_check(line)
        return line

    def encode_point(
        self,
        measurement: str,
        tags: Mapping[str, str],
        fields: Mapping[str, Value],
        ts: int,
    ) -> str:
        """A point that is not a reading (alerts, commands): several fields allowed.

        Where the server stores numbers only, its text fields (an alert's message) are
        left out; a point with nothing else is refused.
        """
        if self.dialect.numbers_only:
            fields = {name: v for name, v in fields.items() if not isinstance(v, str)}
        if not fields:
            raise Unwritable(
                f"point {_show(measurement)} has no fields {self.dialect.name} can store",
                UNSTORABLE_VALUE,
            )
        key, fragile = self.series_key(measurement, tags, fields)
        body = ",".join(
            f"{self.dialect.field_key(name)}={self._value(value)}" for name, value in fields.items()
        )
        line = f"{key} {body} {ts}"
        if fragile:
            self.dialect.line_check(line)
        return line

    def _value(self, value: Value) -> str:
        if value is True or value is False:
            return "true" if value else "false"
        if isinstance(value, str):
            return self.dialect.text(value)
        return self.dialect.number(value)
