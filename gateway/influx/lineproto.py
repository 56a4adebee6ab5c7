"""Readings as InfluxDB line protocol (DESIGN.md §5).

``temperature,device=gh-1,zone=north value=21.5 1795755841000000000``: the
measurement is the metric, ``device`` and the reading's tags are tags, and the
field is named by the value's type — numbers in ``value`` (always floats),
booleans in ``state``, strings in ``text`` — so types never collide.

Escaping follows what InfluxDB 1.x's parser accepts (checked against influxd
1.6 by ``tests/influx/test_escaping.py``): in names and tags a ``,`` `` `` or
``=`` is escaped with a backslash; any other backslash is literal, including
one before a special character (``a\\,b`` encodes as ``a\\\\,b``). In string
fields ``\\`` and ``"`` are escaped. Two things cannot be carried at all and
are refused with :class:`Unwritable`: a name or tag ending in a backslash
(it would escape the separator after it) and a measurement starting with
``#`` (a comment line).
"""

from __future__ import annotations

from collections.abc import Mapping

from devices.model import Reading

_TAG_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})
_MEASUREMENT_ESCAPES = str.maketrans({",": r"\,", " ": r"\ "})
_STRING_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"'})


class Unwritable(ValueError):
    """A reading line protocol cannot represent; ``reason`` is the dead-letter reason."""

    reason = "unwritable"


def _check(kind: str, text: str) -> None:
    if not text:
        raise Unwritable(f"empty {kind}")
    if text.endswith("\\"):
        raise Unwritable(
            f"{kind} {text[:40]!r} ends with a backslash, which line protocol cannot carry"
        )
    if "\n" in text or "\r" in text:
        raise Unwritable(f"{kind} {text[:40]!r} contains a newline")


def series_key(metric: str, device: str, tags: Mapping[str, str]) -> str:
    """``measurement,tag=value…`` with tags sorted by key (what InfluxDB stores)."""
    _check("metric", metric)
    if metric.startswith("#"):
        raise Unwritable(
            f"metric {metric[:40]!r} starts with #, which line protocol reads as a comment"
        )
    _check("device", device)
    parts = [metric.translate(_MEASUREMENT_ESCAPES)]
    if tags:
        merged = dict(tags)
        merged["device"] = device
        for key in sorted(merged):
            value = merged[key]
            _check("tag key", key)
            if value == "":
                continue  # InfluxDB has no empty tags; an absent tag reads the same
            _check(f"tag {key}", value)
            parts.append(f"{key.translate(_TAG_ESCAPES)}={value.translate(_TAG_ESCAPES)}")
    else:
        parts.append(f"device={device.translate(_TAG_ESCAPES)}")
    return ",".join(parts)


def field(value: float | bool | str) -> str:
    """``value=21.5`` / ``state=true`` / ``text="on"``."""
    if value is True:
        return "state=true"
    if value is False:
        return "state=false"
    if isinstance(value, str):
        return f'text="{value.translate(_STRING_ESCAPES)}"'
    return f"value={float(value)!r}"


class LineEncoder:
    """Encodes readings, caching series keys (a gateway writes the same few thousand)."""

    def __init__(self, cache_size: int = 100_000) -> None:
        self._keys: dict[tuple[str, str, tuple[tuple[str, str], ...]], str] = {}
        self._cache_size = cache_size

    def encode(self, reading: Reading) -> str:
        tags = reading.tags
        cache_key = (reading.metric, reading.device, tuple(tags.items()) if tags else ())
        key = self._keys.get(cache_key)
        if key is None:
            key = series_key(reading.metric, reading.device, tags)
            if len(self._keys) >= self._cache_size:
                self._keys.clear()
            self._keys[cache_key] = key
        return f"{key} {field(reading.value)} {reading.ts}"

    def encode_point(
        self,
        measurement: str,
        tags: Mapping[str, str],
        fields: Mapping[str, float | bool | str],
        ts: int,
    ) -> str:
        """A point that is not a reading (alerts, commands): several fields allowed."""
        _check("measurement", measurement)
        key = [measurement.translate(_MEASUREMENT_ESCAPES)]
        for name in sorted(tags):
            if tags[name] != "":
                _check(f"tag {name}", tags[name])
                key.append(f"{name.translate(_TAG_ESCAPES)}={tags[name].translate(_TAG_ESCAPES)}")
        body = []
        for name, value in fields.items():
            text = field(value).split("=", 1)[1]
            body.append(f"{name.translate(_TAG_ESCAPES)}={text}")
        return f"{','.join(key)} {','.join(body)} {ts}"
