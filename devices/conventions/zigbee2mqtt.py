"""Zigbee2MQTT: Zigbee devices bridged to MQTT by zigbee2mqtt.io.

Documented at https://www.zigbee2mqtt.io/guide/usage/mqtt_topics_and_messages.html
and https://www.zigbee2mqtt.io/guide/configuration/device-availability.html.

| topic                                  | meaning                                         |
|----------------------------------------|-------------------------------------------------|
| ``zigbee2mqtt/<name>``                 | device state, one JSON object                   |
| ``zigbee2mqtt/<name>/availability``    | ``{"state":"online"}``, or ``online`` (1)       |
| ``zigbee2mqtt/<name>/set``             | command: a JSON object of attributes            |
| ``zigbee2mqtt/bridge/...``             | the bridge itself: ignored here                 |

(1) JSON in 2.x and in 1.x with ``legacy_availability_payload: false``; plain
text in older 1.x setups. Both are read.

Decoding: every scalar becomes a reading, nested objects are flattened with
``_`` (``color: {x, y}`` → ``color_x``, ``color_y``); ``state`` and
``state_<endpoint>`` ``"ON"``/``"OFF"`` become bools; other strings (``action``)
stay strings. ``last_seen`` is dropped — the reading time is the arrival time,
since Zigbee2MQTT publishes as soon as a device reports and ``last_seen`` is
formatted per user setting (ISO local, ISO UTC or epoch ms). ``update`` (OTA
status object) and ``update_available`` are not sensor data and are dropped.

Friendly names may contain ``/`` in Zigbee2MQTT; such a device cannot be told
apart from a sub-topic here and is refused (``unsupported_topic``): rename it.

Commands go to ``<name>/set``; there is no command id, so the acknowledgement is
the state echo on ``<name>`` reporting the requested value.
"""

from __future__ import annotations

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
)
from devices.conventions.helpers import (
    ReadingBuilder,
    base_topic,
    flatten,
    json_bytes,
    on_off,
    parse_json,
    parse_json_object,
    same_value,
    text_of,
)
from devices.model import InvalidReading, Reading

IGNORED_FIELDS = ("last_seen", "update", "update_available")

# Units of the common exposes (zigbee-herdsman-converters' exposes.ts numeric units).
UNITS = {
    "temperature": "°C",
    "local_temperature": "°C",
    "device_temperature": "°C",
    "humidity": "%",
    "soil_moisture": "%",
    "pressure": "hPa",
    "battery": "%",
    "voltage": "mV",  # battery voltage of end devices; plugs report V as "voltage" too
    "illuminance": "lx",
    "illuminance_lux": "lx",
    "co2": "ppm",
    "voc": "ppb",
    "pm25": "µg/m³",
    "power": "W",
    "energy": "kWh",
    "current": "A",
    "linkquality": "lqi",
}

_COMMAND_SUFFIXES = ("set", "get")


class Zigbee2MqttConvention:
    name = "zigbee2mqtt"

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.base = base_topic(options or {}, "zigbee2mqtt")
        self._prefix = self.base + "/"

    def subscriptions(self) -> list[str]:
        return [f"{self.base}/+", f"{self.base}/+/availability"]

    def availability_subscriptions(self) -> list[str]:
        return [f"{self.base}/+/availability"]

    def _split(self, topic: str) -> list[str] | None:
        if not topic.startswith(self._prefix):
            return None
        return topic[len(self._prefix) :].split("/")

    def decode(self, message: Message) -> list[Reading]:
        levels = self._split(message.topic)
        if levels is None:
            raise DecodeError("unsupported_topic", f"not under {self.base}/: {message.topic}")
        if levels[0] == "bridge":
            return []
        if len(levels) == 1:
            return self._decode_state(levels[0], message)
        check_device_id(levels[0])
        if levels[1] == "availability" and len(levels) == 2:
            return []
        if levels[1] in _COMMAND_SUFFIXES:
            return []
        raise DecodeError(
            "unsupported_topic",
            f"{message.topic}: friendly names with '/' are not supported",
        )

    def _decode_state(self, device: str, message: Message) -> list[Reading]:
        data = parse_json_object(message.payload)
        builder = ReadingBuilder(device, message)
        for metric, value in flatten(data, skip=IGNORED_FIELDS):
            if metric == "state" or metric.startswith("state_"):
                value = on_off(value)
            builder.add_lenient(metric, value, UNITS.get(metric, ""))
        return builder.result()

    def availability(self, message: Message) -> Availability | None:
        levels = self._split(message.topic)
        if levels is None or len(levels) != 2 or levels[1] != "availability":
            return None
        device = check_device_id(levels[0])
        try:
            data = parse_json(message.payload)
        except InvalidReading:
            data = text_of(message.payload)  # legacy: plain online/offline
        if isinstance(data, dict):
            data = data.get("state")
        if data in ("online", "offline"):
            return Availability(device, data == "online")
        return None

    def encode_command(
        self, device: str, command_id: str, settings: Mapping[str, Any]
    ) -> list[Publish]:
        check_device_id(device)
        body = {}
        for key, value in settings.items():
            if (key == "state" or key.startswith("state_")) and isinstance(value, bool):
                value = "ON" if value else "OFF"  # Zigbee2MQTT wants ON/OFF/TOGGLE
            body[key] = value
        return [Publish(f"{self.base}/{device}/set", json_bytes(body))]

    def ack_subscriptions(self, device: str) -> list[str]:
        return [f"{self.base}/{check_device_id(device)}"]

    def confirm(self, message: Message, pending: PendingCommand) -> Confirmation | None:
        if message.topic != f"{self.base}/{pending.device}":
            return None
        try:
            state = parse_json_object(message.payload)
        except InvalidReading:
            return None
        keys = frozenset(
            key
            for key, requested in pending.settings.items()
            if key in state and same_value(requested, state[key])
        )
        return Confirmation(keys) if keys else None
