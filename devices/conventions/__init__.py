"""Device conventions by name: ``format:`` of an input, ``convention:`` of a device.

Adding a convention is adding a module with a class that satisfies
:class:`devices.conventions.base.Convention` and one line in ``_BUILTIN``.
Every convention is also a payload format (the convention object is its own
decoder): :mod:`devices.catalog` offers both under ``format:``.

Names: ``outpost``, ``zigbee2mqtt``, ``tasmota``, ``esphome``, ``shelly_gen2``, ``homie``,
``sparkplug``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from devices.conventions.base import (
    AckOutcome,
    AckTracker,
    Availability,
    Confirmation,
    Convention,
    PendingCommand,
    Publish,
    check_device_id,
)
from devices.conventions.esphome import EsphomeConvention
from devices.conventions.homie import HomieConvention
from devices.conventions.outpost import OutpostConvention
from devices.conventions.shelly_gen2 import ShellyGen2Convention
from devices.conventions.sparkplug import SparkplugConvention
from devices.conventions.tasmota import TasmotaConvention
from devices.conventions.zigbee2mqtt import Zigbee2MqttConvention

__all__ = [
    "AckOutcome",
    "AckTracker",
    "Availability",
    "Confirmation",
    "Convention",
    "ConventionFactory",
    "PendingCommand",
    "Publish",
    "check_device_id",
    "create",
    "names",
    "register",
]


class ConventionFactory(Protocol):
    """Builds a convention from an ``inputs:`` entry or a device's options (a class, usually)."""

    def __call__(self, options: Mapping[str, Any]) -> Convention: ...


_CONVENTIONS: dict[str, ConventionFactory] = {}


def register(name: str, factory: ConventionFactory) -> None:
    """Make ``convention: name`` (and so ``format: name``) available."""
    if name in _CONVENTIONS:
        raise ValueError(f"device convention {name!r} registered twice")
    _CONVENTIONS[name] = factory


def create(name: str, options: Mapping[str, Any] | None = None) -> Convention:
    """A convention instance for one input or device; unknown option keys are ignored.

    Raises KeyError for an unknown name, ValueError for a bad option.
    """
    try:
        factory = _CONVENTIONS[name]
    except KeyError:
        raise KeyError(f"unknown device convention {name!r}; known: {', '.join(names())}") from None
    return factory(options or {})


def names() -> list[str]:
    return sorted(_CONVENTIONS)


_BUILTIN: dict[str, ConventionFactory] = {
    "outpost": OutpostConvention,
    "zigbee2mqtt": Zigbee2MqttConvention,
    "tasmota": TasmotaConvention,
    "esphome": EsphomeConvention,
    "shelly_gen2": ShellyGen2Convention,
    "homie": HomieConvention,
    "sparkplug": SparkplugConvention,
}

for _name, _factory in _BUILTIN.items():
    register(_name, _factory)
