"""ESPHome with its MQTT client component (https://esphome.io/components/mqtt.html).

Every entity publishes its state on ``<topic_prefix>/<component>/<object_id>/state``
and listens on ``.../command``; the birth and will messages go to
``<topic_prefix>/status`` (``online`` / ``offline``). ``topic_prefix`` defaults
to the node name and is the device id here. A prefix of several levels
(``home/esp1``) is supported by setting option ``base: home``.

| topic                                     | payload                       |
|-------------------------------------------|-------------------------------|
| ``<prefix>/sensor/<name>/state``          | ``21.5`` (``nan`` when unknown: skipped) |
| ``<prefix>/binary_sensor/<name>/state``   | ``ON`` / ``OFF`` → bool        |
| ``<prefix>/switch/<name>/state``          | ``ON`` / ``OFF`` → bool        |
| ``<prefix>/switch/<name>/command``        | ``ON`` / ``OFF`` / ``TOGGLE``  |
| ``<prefix>/light/<name>/state``           | JSON ``{"state":"ON","brightness":255}`` (1) |
| ``<prefix>/climate/<name>/<attr>/state``  | e.g. ``current_temperature`` → ``<name>_<attr>`` |
| ``<prefix>/status``                       | ``online`` / ``offline``       |

(1) a JSON state becomes ``<name>_state``, ``<name>_brightness``, …

The metric is the object id. Command settings are keyed ``<component>/<object_id>``
or just ``<object_id>``, whose component is guessed from the value: a bool or
``ON``/``OFF``/``TOGGLE`` → ``switch``, a number → ``number``, another string →
``select``, an object → ``light``. ESPHome has no command id: the ack is the
entity's ``/state`` echo reporting the requested value.
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
    flatten,
    json_bytes,
    on_off,
    parse_json,
    same_value,
    scalar_from_text,
    text_of,
)
from devices.model import InvalidReading, Reading

# Components whose state is ON/OFF (a text_sensor saying "On" stays text).
_ON_OFF_COMPONENTS = frozenset({"switch", "binary_sensor", "fan", "light", "output"})


class EsphomeConvention:
    name = "esphome"

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.base = base_topic(options or {}, "")
        self._prefix = self.base + "/" if self.base else ""

    def _device_topic(self, device: str, rest: str) -> str:
        return f"{self._prefix}{device}/{rest}"

    def _split(self, topic: str) -> list[str] | None:
        if not topic.startswith(self._prefix):
            return None
        return topic[len(self._prefix) :].split("/")

    def subscriptions(self) -> list[str]:
        return [
            self._device_topic("+", "+/+/state"),
            self._device_topic("+", "+/+/+/state"),
            self._device_topic("+", "status"),
        ]

    def availability_subscriptions(self) -> list[str]:
        return [self._device_topic("+", "status")]

    def decode(self, message: Message) -> list[Reading]:
        levels = self._split(message.topic)
        if levels is None or len(levels) < 2:
            raise DecodeError("unsupported_topic", f"not an ESPHome topic: {message.topic}")
        device = check_device_id(levels[0])
        if len(levels) == 2 and levels[1] == "status":
            return []
        if levels[-1] == "command":
            return []
        if levels[-1] != "state" or len(levels) not in (4, 5):
            raise DecodeError("unsupported_topic", f"not an ESPHome state topic: {message.topic}")
        metric = "_".join(levels[2:-1])  # object_id, or object_id_attribute for climate
        builder = ReadingBuilder(device, message)
        text = text_of(message.payload)
        if text.startswith("{"):
            data = parse_json(message.payload)
            if not isinstance(data, dict):
                raise DecodeError("not_object", "light/fan state must be a JSON object")
            for field, value in flatten(data):
                builder.add_lenient(f"{metric}_{field}", on_off(value))
            return builder.result()
        if text.lower() == "nan":
            return []  # ESPHome publishes nan while a sensor has no value yet
        try:
            value = scalar_from_text(text)
        except InvalidReading:
            return []  # inf: no value either
        if isinstance(value, float) and not math.isfinite(value):
            return []
        if levels[1] in _ON_OFF_COMPONENTS:
            value = on_off(value)
        builder.add(metric, value)
        return builder.result()

    def availability(self, message: Message) -> Availability | None:
        levels = self._split(message.topic)
        if levels is None or len(levels) != 2 or levels[1] != "status":
            return None
        state = text_of(message.payload)
        if state not in ("online", "offline"):
            return None
        return Availability(check_device_id(levels[0]), state == "online")

    @staticmethod
    def _entity(key: str, value: Any) -> tuple[str, str]:
        if "/" in key:
            component, _, object_id = key.partition("/")
        else:
            object_id = key
            if isinstance(value, bool) or (
                isinstance(value, str) and value.upper() in ("ON", "OFF", "TOGGLE")
            ):
                component = "switch"
            elif isinstance(value, (int, float)):
                component = "number"
            elif isinstance(value, Mapping):
                component = "light"
            else:
                component = "select"
        return check_topic_level("command", component), check_topic_level("command", object_id)

    def encode_command(
        self, device: str, command_id: str, settings: Mapping[str, Any]
    ) -> list[Publish]:
        check_device_id(device)
        publishes = []
        for key, value in settings.items():
            component, object_id = self._entity(key, value)
            if isinstance(value, bool):
                payload = b"ON" if value else b"OFF"
            elif isinstance(value, Mapping):
                payload = json_bytes(dict(value))
            else:
                payload = str(value).encode()
            topic = self._device_topic(device, f"{component}/{object_id}/command")
            publishes.append(Publish(topic, payload))
        return publishes

    def ack_subscriptions(self, device: str) -> list[str]:
        return [self._device_topic(check_device_id(device), "+/+/state")]

    def confirm(self, message: Message, pending: PendingCommand) -> Confirmation | None:
        keys = set()
        for key, requested in pending.settings.items():
            try:
                component, object_id = self._entity(key, requested)
            except InvalidReading:
                continue
            topic = self._device_topic(pending.device, f"{component}/{object_id}/state")
            if message.topic != topic:
                continue
            try:
                text = text_of(message.payload)
            except InvalidReading:
                return None
            if isinstance(requested, Mapping):
                reported: Any = text
            else:
                try:
                    reported = scalar_from_text(text)
                except InvalidReading:
                    continue
            if same_value(requested, reported):
                keys.add(key)
        return Confirmation(frozenset(keys)) if keys else None
