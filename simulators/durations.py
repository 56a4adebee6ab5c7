"""Durations in scenario files: ``90``, ``90s``, ``1.5m``, ``2h`` → seconds (simulated)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(text: str) -> float:
    """Seconds in ``text`` (a bare number is seconds); ``ValueError`` if it is not one."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"not a duration: {text!r} (e.g. 30s, 5m, 1h)")
    return float(match[1]) * _UNIT_SECONDS[match[2]]


def _to_seconds(value: Any) -> Any:
    if isinstance(value, str):
        return parse_duration(value)
    return value  # numbers (seconds) and wrong types: pydantic reports the latter


Duration = Annotated[float, BeforeValidator(_to_seconds)]
"""A pydantic field type: a number of seconds or a duration string."""
