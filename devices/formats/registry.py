"""Payload formats by name: the ``format:`` key of an ``inputs:`` entry.

This module only keeps the table; :mod:`devices.catalog` fills it with
the built-in formats and the device conventions and is what callers look
names up in.
"""

from __future__ import annotations

from devices.decoding import DecoderFactory

_FORMATS: dict[str, DecoderFactory] = {}


def register(name: str, factory: DecoderFactory) -> None:
    """Make ``format: name`` available; a second registration of a name is a bug."""
    if name in _FORMATS:
        raise ValueError(f"payload format {name!r} registered twice")
    _FORMATS[name] = factory


def lookup(name: str) -> DecoderFactory:
    return _FORMATS[name]


def registered() -> list[str]:
    return sorted(_FORMATS)
