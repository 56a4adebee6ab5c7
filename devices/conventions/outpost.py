"""The ``outpost`` convention (DESIGN.md §5): Outpost's own devices, simulators and bridges.

| topic                       | payload                                           |
|-----------------------------|---------------------------------------------------|
| ``sensors/{device}``        | ``{"temperature": 21.5, "ts": 1795755841}``       |
| ``sensors/{device}/{metric}`` | ``21.5``, ``true``, ``"on"``                    |
| ``devices/{device}/status`` | ``online`` / ``offline`` (retained, LWT)          |
| ``devices/{device}/set``    | ``{"id": "<command id>", "speed": 100}``          |
| ``devices/{device}/ack``    | ``{"id": "<command id>", "ok": true}`` (+ ``"error"``) |

``ts`` may be epoch seconds, milliseconds, microseconds or nanoseconds (told
apart by magnitude) or an RFC 3339 string, read as the ``json`` format reads a
``time_field`` (:func:`devices.formats.common.parse_time`); without it the arrival
time is used.
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
    flatten,
    json_bytes,
    parse_json,
    parse_json_object,
    scalar_from_text,
    text_of,
)
from devices.formats.common import parse_time
from devices.model import InvalidReading, Reading

TIME_FIELD = "ts"


class OutpostConvention:
    name = "outpost"

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        options = options or {}
        self.time_field = str(options.get("time_field", TIME_FIELD))

    def subscriptions(self) -> list[str]:
        return ["sensors/+", "sensors/+/+", "devices/+/status"]

    def availability_subscriptions(self) -> list[str]:
        return ["devices/+/status"]

    def decode(self, message: Message) -> list[Reading]:
        levels = message.topic.split("/")
        if levels[0] == "devices" and len(levels) == 3 and levels[2] in ("status", "set", "ack"):
            check_device_id(levels[1])
            return []
        if levels[0] != "sensors" or len(levels) not in (2, 3):
            raise DecodeError("unsupported_topic", f"not an outpost topic: {message.topic}")
        device = levels[1]
        if len(levels) == 3:
            builder = ReadingBuilder(device, message)
            text = text_of(message.payload)
            try:
                value = parse_json(message.payload)
            except InvalidReading:
                value = scalar_from_text(text)
            if isinstance(value, (dict, list)) or value is None:
                raise DecodeError("bad_value", "a per-metric payload must be one scalar")
            builder.add(levels[2], value)
            return builder.result()
        data = parse_json_object(message.payload)
        ts = 0
        if self.time_field in data:
            ts = parse_time(data[self.time_field])
        builder = ReadingBuilder(device, message, ts=ts)
        for metric, value in flatten(data, skip=(self.time_field,)):
            builder.add_lenient(metric, value)
        return builder.result()

    def availability(self, message: Message) -> Availability | None:
        levels = message.topic.split("/")
        if len(levels) != 3 or levels[0] != "devices" or levels[2] != "status":
            return None
        state = text_of(message.payload).lower()
        if state not in ("online", "offline"):
            return None
        return Availability(check_device_id(levels[1]), state == "online")

    def encode_command(
        self, device: str, command_id: str, settings: Mapping[str, Any]
    ) -> list[Publish]:
        check_device_id(device)
        if "id" in settings:
            raise InvalidReading("bad_command", "'id' is reserved for the command id")
        body = {"id": command_id, **settings}
        return [Publish(f"devices/{device}/set", json_bytes(body))]

    def ack_subscriptions(self, device: str) -> list[str]:
        return [f"devices/{check_device_id(device)}/ack"]

    def confirm(self, message: Message, pending: PendingCommand) -> Confirmation | None:
        if message.topic != f"devices/{pending.device}/ack":
            return None
        try:
            data = parse_json_object(message.payload)
        except InvalidReading:
            return None
        if data.get("id") != pending.command_id:
            return None
        if data.get("ok") is True:
            return Confirmation.everything(pending)
        return Confirmation.refusal(str(data.get("error") or "device answered ok=false"))
