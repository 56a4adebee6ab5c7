"""Every payload format the gateway knows: the built-in ones and the device conventions.

Importing this module registers them (each module registers itself when
imported); ``get`` and ``names`` are what the config loader and the pipeline use.
"""

from __future__ import annotations

import devices.conventions  # noqa: F401  (zigbee2mqtt, tasmota, … as input formats)
import gateway.decoders.formats  # noqa: F401  (value, json, influx)
from gateway.decoders.base import DecoderFactory
from gateway.decoders.registry import lookup, registered


def get(name: str) -> DecoderFactory:
    return lookup(name)


def names() -> list[str]:
    return registered()
