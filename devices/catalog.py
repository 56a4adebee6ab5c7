"""Every payload format an input can name: the built-in formats and the device conventions.

Two tables feed it, one per kind of plugin: :mod:`devices.formats.registry`
(payload formats that only decode: ``value``, ``json``, ``influx``) and
:mod:`devices.conventions` (device families that also speak availability and
commands; each is its own decoder). A name is looked up in the formats first.
``get`` and ``names`` are what the config loader and the pipeline use.
"""

from __future__ import annotations

from devices import conventions, formats
from devices.decoding import DecoderFactory


def get(name: str) -> DecoderFactory:
    """The decoder factory for ``format: name``; KeyError for an unknown name."""
    try:
        return formats.registry.lookup(name)
    except KeyError:
        pass
    if name in conventions.names():
        return lambda options: conventions.create(name, options)
    raise KeyError(name)


def names() -> list[str]:
    return sorted({*formats.registry.registered(), *conventions.names()})
