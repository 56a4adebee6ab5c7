"""Homie 4 (https://homieiot.github.io/specification/spec-core-v4_0_0/).

- ``homie/<device>/$state``: ``init``, ``ready``, ``disconnected``, ``sleeping``,
  ``lost``, ``alert``
- ``homie/<device>/<node>/<property>``: the value as text (``21.5``, ``true``, ``255,0,0``)
- ``homie/<device>/<node>/<property>/$datatype``: ``integer``, ``float``, ``boolean``,
  ``string``, ``enum``, ``color``
- ``homie/<device>/<node>/<property>/$unit``: ``°C``, ``%``, …
- ``homie/<device>/<node>/<property>/set``: a command, the new value as text

The attributes are retained, so they arrive right after subscribing and before
most values; this convention remembers ``$datatype`` and ``$unit`` per property
(a bounded map) and types values by them: ``integer``/``float`` → float,
``boolean`` → bool, everything else a string. Before a ``$datatype`` is known,
the value is guessed (number, ``true``/``false``, else text).

A reading is named after its property and tagged ``node=<node>``.

Availability: ``ready`` and ``alert`` (connected, but something needs a look)
are online; ``disconnected``, ``lost`` and ``sleeping`` (it will not answer
commands) are offline; ``init`` says nothing yet.

Commands: settings are keyed ``<node>/<property>``; the ack is the property's
value echo, which Homie devices publish after applying a ``/set``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from devices.conventions.base import (
    Availability,
    Confirmation,
    DecodeError,
    Message,
    PendingCommand,
    Publish,
    check_device_id,
    check_topic_level,
)
from devices.conventions.helpers import (
    ReadingBuilder,
    base_topic,
    same_value,
    scalar_from_text,
    text_of,
)
from devices.model import InvalidReading, Reading, Value

_ONLINE = {"ready": True, "alert": True, "disconnected": False, "lost": False, "sleeping": False}
MAX_REMEMBERED = 20_000


class HomieConvention:
    name = "homie"

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.base = base_topic(options or {}, "homie")
        self._prefix = self.base + "/"
        # (device, node, property) → attribute value; cleared when full (bounded).
        self._datatypes: dict[tuple[str, str, str], str] = {}
        self._units: dict[tuple[str, str, str], str] = {}

    def _split(self, topic: str) -> list[str] | None:
        if not topic.startswith(self._prefix):
            return None
        return topic[len(self._prefix) :].split("/")

    def subscriptions(self) -> list[str]:
        b = self.base
        return [f"{b}/+/$state", f"{b}/+/+/+", f"{b}/+/+/+/$datatype", f"{b}/+/+/+/$unit"]

    def availability_subscriptions(self) -> list[str]:
        return [f"{self.base}/+/$state"]

    def _remember(self, table: dict[tuple[str, str, str], str], key: Any, value: str) -> None:
        if len(table) >= MAX_REMEMBERED and key not in table:
            table.clear()
        table[key] = value

    def decode(self, message: Message) -> list[Reading]:
        levels = self._split(message.topic)
        if levels is None or len(levels) < 2:
            raise DecodeError("unsupported_topic", f"not a Homie topic: {message.topic}")
        device = check_device_id(levels[0])
        if len(levels) == 4 and levels[3] in ("$datatype", "$unit"):
            key = (device, levels[1], levels[2])
            table = self._datatypes if levels[3] == "$datatype" else self._units
            self._remember(table, key, text_of(message.payload))
            return []
        if any(level.startswith("$") for level in levels[1:]) or levels[-1] == "set":
            return []  # device/node/property attributes, and commands
        if len(levels) != 3:
            raise DecodeError("unsupported_topic", f"not a Homie property: {message.topic}")
        node, prop = levels[1], levels[2]
        key = (device, node, prop)
        value = self._typed(text_of(message.payload), self._datatypes.get(key))
        if value is None:
            return []
        builder = ReadingBuilder(device, message)
        builder.add(prop, value, self._units.get(key, ""), {"node": node})
        return builder.result()

    @staticmethod
    def _typed(text: str, datatype: str | None) -> Value | None:
        if datatype in ("integer", "float"):
            if not text:
                return None
            try:
                number = float(text)
            except ValueError:
                raise DecodeError("bad_value", f"{datatype} property sent {text[:40]!r}") from None
            if not math.isfinite(number):
                raise DecodeError("non_finite", f"non-finite {datatype} {text!r}")
            return number
        if datatype == "boolean":
            if text not in ("true", "false"):
                raise DecodeError("bad_value", f"boolean property sent {text[:40]!r}")
            return text == "true"
        if datatype is not None:
            return text  # string, enum, color
        return scalar_from_text(text) if text else None

    def availability(self, message: Message) -> Availability | None:
        levels = self._split(message.topic)
        if levels is None or len(levels) != 2 or levels[1] != "$state":
            return None
        online = _ONLINE.get(text_of(message.payload))
        if online is None:
            return None
        return Availability(check_device_id(levels[0]), online)

    @staticmethod
    def _property(key: str) -> tuple[str, str]:
        node, sep, prop = key.partition("/")
        if not sep:
            raise InvalidReading(
                "bad_command", f"Homie settings are keyed node/property, not {key!r}"
            )
        return check_topic_level("command", node), check_topic_level("command", prop)

    def encode_command(
        self, device: str, command_id: str, settings: Mapping[str, Any]
    ) -> list[Publish]:
        check_device_id(device)
        publishes = []
        for key, value in settings.items():
            node, prop = self._property(key)
            if isinstance(value, bool):
                payload = b"true" if value else b"false"
            elif isinstance(value, float) and value.is_integer():
                payload = str(int(value)).encode()
            else:
                payload = str(value).encode()
            publishes.append(
                Publish(f"{self.base}/{device}/{node}/{prop}/set", payload, retain=False)
            )
        return publishes

    def ack_subscriptions(self, device: str) -> list[str]:
        return [f"{self.base}/{check_device_id(device)}/+/+"]

    def confirm(self, message: Message, pending: PendingCommand) -> Confirmation | None:
        levels = self._split(message.topic)
        if levels is None or len(levels) != 3 or levels[0] != pending.device:
            return None
        key = f"{levels[1]}/{levels[2]}"
        if key not in pending.settings:
            return None
        try:
            reported = scalar_from_text(text_of(message.payload))
        except InvalidReading:
            return None
        if same_value(pending.settings[key], reported):
            return Confirmation(frozenset({key}))
        return None
