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

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from devices.model import InvalidReading, Reading

DecodeError = InvalidReading
"""Raised by a decoder; ``reason`` becomes the dead-letter reason and metric label."""


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
