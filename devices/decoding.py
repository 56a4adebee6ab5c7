"""The decoder contract: one MQTT message in, zero or more readings out.

A decoder is built once per configured input (``inputs:`` entry) from that
input's options, then called for every message that matched the input's topic
template. It must be fast (it runs once per message on the ingest path) and
must never raise anything but :class:`DecodeError`: the pipeline dead-letters
the message with ``reason`` and carries on.

Decoders register by name (the ``format:`` of an input); adding a payload
format is adding a module that calls :func:`devices.formats.registry.register`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from devices.model import InvalidReading, Reading, check_text

DecodeError = InvalidReading
"""Raised by a decoder; ``reason`` becomes the dead-letter reason and metric label."""


def too_many_readings(limit: int, count: int | None = None) -> DecodeError:
    """The refusal of a message that decodes to more than ``limit`` readings.

    ``limit`` is the input's ``max_readings_per_message``; a decoder that stops counting
    early (cheaper than building thousands of readings to throw away) gives no ``count``.
    """
    said = f"{count} readings" if count is not None else f"more than {limit} readings"
    return DecodeError("too_many_readings", f"{said}; max_readings_per_message is {limit}")


def load_json(payload: bytes) -> Any:
    """A JSON payload, as every decoder reads one.

    Strict UTF-8 (``bad_utf8``: ``json.loads`` would otherwise guess UTF-16/32 from the
    first bytes and let encoded surrogates through); ``NaN`` and ``Infinity``, which
    are not JSON, refused as ``non_finite``; nesting deeper than Python parses is
    ``too_deep``; a lone surrogate escape (``"\\ud800"``) anywhere, key or value, is
    ``invalid_text``; anything else unreadable is ``bad_json``.
    """
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise DecodeError("bad_utf8", "payload is not UTF-8") from None
    try:
        data = json.loads(text, parse_constant=_no_constants)
    except RecursionError:
        raise DecodeError("too_deep", "JSON nested too deep") from None
    except InvalidReading:
        raise
    except ValueError as exc:
        # Also catches integers longer than Python's 4300-digit limit.
        raise DecodeError("bad_json", f"not JSON: {str(exc)[:80]}") from None
    if "\\u" in text:  # only an escape can spell a surrogate in decoded UTF-8
        _refuse_lone_surrogates(data)
    return data


def _no_constants(name: str) -> Any:
    raise DecodeError("non_finite", f"non-finite number {name}")


def _refuse_lone_surrogates(data: Any) -> None:
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            check_text("JSON text", item)
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


@dataclass(frozen=True, slots=True)
class Message:
    """An MQTT message as a decoder sees it.

    ``fields`` are the values the input's topic template captured
    (``{"device": "gh-1", "metric": "temperature"}``); ``received_ns`` is the
    gateway's arrival time, used when the payload carries no timestamp.
    ``trace_id`` identifies the message; decoders copy it into every reading
    so alerts and commands can be traced back to it.
    """

    topic: str
    payload: bytes
    fields: Mapping[str, str]
    received_ns: int
    tags: Mapping[str, str] = field(default_factory=dict)
    trace_id: str = ""


class Decoder(Protocol):
    """Turns a :class:`Message` into readings; raises :class:`DecodeError` on bad input."""

    def decode(self, message: Message) -> list[Reading]: ...


class DecoderFactory(Protocol):
    """Builds a decoder from an input's options (the ``inputs:`` entry, as a dict)."""

    def __call__(self, options: Mapping[str, Any]) -> Decoder: ...
