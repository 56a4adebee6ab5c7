"""Durations (``30s``, ``5m``, ``1h``, ``7d``) and sizes (``64KiB``, ``256MiB``) in config."""

from __future__ import annotations

import re

from rules import durations

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|KiB|MB|MiB|GB|GiB|k|K|M|G)?\s*$")
_SIZE_UNITS = {
    None: 1,
    "B": 1,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "k": 1024,
    "K": 1024,
    "KiB": 1024,
    "M": 1024**2,
    "MiB": 1024**2,
    "G": 1024**3,
    "GiB": 1024**3,
}


def parse_duration(value: object) -> float:
    """Seconds from ``"30s"``-style text (read by the rules' parser); a bare number means seconds.

    Unlike a rule's ``for:``, a setting may exceed a year (a retention), so no bound applies.
    """
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    if isinstance(value, str):
        try:
            return durations.parse_duration(value, longest=None) / durations.SECOND
        except durations.DurationError:
            pass  # the config's own wording below names the forms a setting takes
    raise ValueError(f"not a duration: {value!r} (use e.g. 500ms, 30s, 5m, 1h, 7d)")


def parse_size(value: object) -> int:
    """Bytes from ``"64KiB"``-style text; a bare number means bytes."""
    if isinstance(value, bool):
        raise ValueError(f"not a size: {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a size cannot be negative")
        return value
    if isinstance(value, str):
        match = _SIZE.match(value)
        if match:
            return int(float(match.group(1)) * _SIZE_UNITS[match.group(2)])
    raise ValueError(f"not a size: {value!r} (use e.g. 64KiB, 256MiB, 1GB)")
