"""Payload formats by name: the ``format:`` key of an ``inputs:`` entry."""

from __future__ import annotations

from gateway.decoders.base import DecoderFactory

_FORMATS: dict[str, DecoderFactory] = {}


def register(name: str, factory: DecoderFactory) -> None:
    """Make ``format: name`` available; a second registration of a name is a bug."""
    if name in _FORMATS:
        raise ValueError(f"payload format {name!r} registered twice")
    _FORMATS[name] = factory


def get(name: str) -> DecoderFactory:
    _load_builtin()
    return _FORMATS[name]


def names() -> list[str]:
    _load_builtin()
    return sorted(_FORMATS)


def _load_builtin() -> None:
    # Imported for their registrations; late so that registry has no import cycle.
    import devices.conventions  # noqa: F401  (zigbee2mqtt, tasmota, … as input formats)
    import gateway.decoders.formats  # noqa: F401
