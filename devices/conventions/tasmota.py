"""Tasmota: ESP8266/ESP32 firmware, MQTT as documented at https://tasmota.github.io/docs/MQTT/
and https://tasmota.github.io/docs/Commands/.

Topics follow the device's FullTopic, by default ``%prefix%/%topic%/`` (option
``full_topic`` for another layout), where the device id is ``%topic%``:

| topic                  | payload                                                          |
|------------------------|------------------------------------------------------------------|
| ``tele/<t>/SENSOR``    | ``{"Time":"…","AM2301":{"Temperature":21.3},"TempUnit":"C"}``     |
| ``tele/<t>/STATE``     | ``{"Time":"…","UptimeSec":611,"POWER":"OFF","Wifi":{"RSSI":44,…}}`` |
| ``tele/<t>/LWT``       | ``Online`` / ``Offline`` (retained)                               |
| ``cmnd/<t>/<Command>`` | the command's parameter: ``cmnd/t/POWER`` ← ``ON``               |
| ``stat/<t>/RESULT``    | the command's result: ``{"POWER":"ON"}``, ``{"Command":"Unknown"}`` |

**Time policy.** ``Time`` is the device's *local* time with no zone (and no
guarantee the device's clock or zone is right). It is ignored by default and
the reading gets the arrival time (option ``time: arrival``); with
``time: local`` it is read as the gateway's local time, for devices known to
share the gateway's zone and to be synced over NTP.

**Sensors.** Each sensor object becomes readings named after its fields in
snake case, tagged ``sensor=<object name>``: ``AM2301.Temperature`` → metric
``temperature`` with tag ``sensor: AM2301``, ``ENERGY.Power`` → ``power``
(``sensor: ENERGY``); ``TempUnit``/``PressureUnit`` give the units. Top-level
``Switch1: "ON"`` becomes ``switch1 = true``.

**State.** From ``STATE`` (and ``RESULT``): ``POWER<n>`` (bool), ``Dimmer``,
``CT``, ``White``, ``UptimeSec`` (as ``uptime``), ``Wifi.RSSI``/``Wifi.Signal``.

**Commands.** Each setting is one ``cmnd/<t>/<Key>`` message; bools become
``ON``/``OFF``. Tasmota has no command id: the ack is the ``stat/<t>/RESULT``
that reports the requested value (keys compared case-insensitively);
``{"Command":"Unknown"}`` or ``{"Command":"Error"}`` is a rejection.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
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
    flatten,
    on_off,
    parse_json_object,
    same_value,
    snake,
    text_of,
)
from devices.formats.common import datetime_ns
from devices.model import InvalidReading, Reading

_POWER = re.compile(r"^POWER\d*$", re.IGNORECASE)
_STATE_FIELDS = {"Dimmer": "dimmer", "CT": "ct", "White": "white", "UptimeSec": "uptime"}
_STATE_UNITS = {"dimmer": "%", "white": "%", "uptime": "s", "wifi_rssi": "%", "wifi_signal": "dBm"}
_ENERGY_UNITS = {
    "total": "kWh",
    "yesterday": "kWh",
    "today": "kWh",
    "power": "W",
    "apparent_power": "VA",
    "reactive_power": "VAr",
    "voltage": "V",
    "current": "A",
}
_TEMPERATURE_FIELDS = ("temperature", "dew_point")


class TasmotaConvention:
    name = "tasmota"

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        options = options or {}
        full_topic = str(options.get("full_topic", "%prefix%/%topic%/")).strip("/")
        self._layout = full_topic.split("/")
        if self._layout.count("%prefix%") != 1 or self._layout.count("%topic%") != 1:
            raise ValueError("full_topic must contain %prefix% and %topic% once each")
        self.time_policy = str(options.get("time", "arrival"))
        if self.time_policy not in ("arrival", "local"):
            raise ValueError("time must be 'arrival' or 'local'")

    # --- topics --------------------------------------------------------------------

    def _topic(self, prefix: str, device: str, suffix: str) -> str:
        levels = [
            prefix if level == "%prefix%" else device if level == "%topic%" else level
            for level in self._layout
        ]
        return "/".join([*levels, suffix])

    def _parse(self, topic: str) -> tuple[str, str, str] | None:
        """(prefix, device, suffix) of a topic in this FullTopic layout, else None."""
        levels = topic.split("/")
        if len(levels) != len(self._layout) + 1:
            return None
        prefix = device = ""
        for level, pattern in zip(levels, self._layout, strict=False):
            if pattern == "%prefix%":
                prefix = level
            elif pattern == "%topic%":
                device = level
            elif level != pattern:
                return None
        return prefix, device, levels[-1]

    def subscriptions(self) -> list[str]:
        return [
            self._topic("tele", "+", "SENSOR"),
            self._topic("tele", "+", "STATE"),
            self._topic("tele", "+", "LWT"),
        ]

    def availability_subscriptions(self) -> list[str]:
        return [self._topic("tele", "+", "LWT")]

    # --- readings ------------------------------------------------------------------

    def decode(self, message: Message) -> list[Reading]:
        parsed = self._parse(message.topic)
        if parsed is None:
            raise DecodeError("unsupported_topic", f"not a Tasmota topic: {message.topic}")
        prefix, device, suffix = parsed
        check_device_id(device)
        if prefix == "tele" and suffix == "SENSOR":
            return self._decode_sensor(device, message)
        if (prefix, suffix) in (("tele", "STATE"), ("stat", "RESULT")):
            return self._decode_state(device, message)
        if prefix in ("tele", "stat", "cmnd"):
            return []  # LWT, INFO1…, STATUS…, command echoes: no readings
        raise DecodeError("unsupported_topic", f"unknown Tasmota prefix {prefix!r}")

    def _timestamp(self, data: Mapping[str, Any], message: Message) -> int:
        if self.time_policy != "local" or not isinstance(data.get("Time"), str):
            return message.received_ns
        try:
            local = datetime.fromisoformat(data["Time"])
            if local.tzinfo is None:
                local = local.astimezone()  # naive: interpret in the gateway's zone
        except (ValueError, OverflowError):  # also a year 1 moved to a zone east of UTC
            raise DecodeError("bad_timestamp", f"Time {data['Time'][:40]!r}") from None
        return datetime_ns(local)

    def _decode_sensor(self, device: str, message: Message) -> list[Reading]:
        data = parse_json_object(message.payload)
        builder = ReadingBuilder(device, message, ts=self._timestamp(data, message))
        temp_unit = "°" + str(data.get("TempUnit", "C"))
        pressure_unit = str(data.get("PressureUnit", "hPa"))
        for key, value in data.items():
            if key in ("Time", "TempUnit", "PressureUnit", "SpeedUnit"):
                continue
            if isinstance(value, dict):
                tags = {"sensor": key}
                for field, field_value in flatten(value):
                    metric = snake(field)
                    unit = _ENERGY_UNITS.get(metric, "") if key == "ENERGY" else ""
                    if metric in _TEMPERATURE_FIELDS:
                        unit = temp_unit
                    elif metric == "humidity":
                        unit = "%"
                    elif metric in ("pressure", "sea_pressure"):
                        unit = pressure_unit
                    builder.add_lenient(metric, on_off(field_value), unit, tags)
            elif value is not None and not isinstance(value, list):
                builder.add_lenient(snake(key), on_off(value))
        return builder.result()

    def _decode_state(self, device: str, message: Message) -> list[Reading]:
        data = parse_json_object(message.payload)
        builder = ReadingBuilder(device, message, ts=self._timestamp(data, message))
        for key, value in data.items():
            if _POWER.match(key):
                builder.add_lenient(key.lower(), on_off(value))
            elif key in _STATE_FIELDS and isinstance(value, (int, float)):
                metric = _STATE_FIELDS[key]
                builder.add_lenient(metric, value, _STATE_UNITS.get(metric, ""))
            elif key == "Wifi" and isinstance(value, dict):
                for field in ("RSSI", "Signal"):
                    if isinstance(value.get(field), (int, float)):
                        metric = f"wifi_{field.lower()}"
                        builder.add_lenient(metric, value[field], _STATE_UNITS[metric])
        return builder.result()

    def availability(self, message: Message) -> Availability | None:
        parsed = self._parse(message.topic)
        if parsed is None or parsed[0] != "tele" or parsed[2] != "LWT":
            return None
        state = text_of(message.payload)
        if state not in ("Online", "Offline"):
            return None
        return Availability(check_device_id(parsed[1]), state == "Online")

    # --- commands ------------------------------------------------------------------

    def encode_command(
        self, device: str, command_id: str, settings: Mapping[str, Any]
    ) -> list[Publish]:
        check_device_id(device)
        publishes = []
        for key, value in settings.items():
            check_topic_level("command", key)
            publishes.append(Publish(self._topic("cmnd", device, key), _parameter(value)))
        return publishes

    def ack_subscriptions(self, device: str) -> list[str]:
        return [self._topic("stat", check_device_id(device), "RESULT")]

    def confirm(self, message: Message, pending: PendingCommand) -> Confirmation | None:
        if message.topic != self._topic("stat", pending.device, "RESULT"):
            return None
        try:
            result = parse_json_object(message.payload)
        except InvalidReading:
            return None
        if str(result.get("Command", "")).lower() in ("unknown", "error"):
            return Confirmation.refusal(f"Tasmota answered Command: {result['Command']}")
        reported = {key.lower(): value for key, value in result.items()}
        keys = frozenset(
            key
            for key, requested in pending.settings.items()
            if key.lower() in reported and same_value(requested, reported[key.lower()])
        )
        return Confirmation(keys) if keys else None


def _parameter(value: Any) -> bytes:
    if isinstance(value, bool):
        return b"ON" if value else b"OFF"
    if isinstance(value, float) and value.is_integer():
        return str(int(value)).encode()
    return str(value).encode()
