"""Shelly Gen2/Gen3 devices over MQTT.

Documented at https://shelly-api-docs.shelly.cloud/gen2/ComponentsAndServices/Mqtt
(topics), .../gen2/General/RPCProtocol (frames), .../gen2/General/Notifications
and .../gen2/ComponentsAndServices/Switch (status fields, ``Switch.Set``).

The device id here is the MQTT ``topic_prefix`` (by default the Shelly id, e.g.
``shellyplus1pm-a8032ab12345``); a prefix of several levels needs option ``base``.

- ``<id>/status/switch:0``: the component's whole status, ``{"id":0,"output":true,
  "apower":8.9,"voltage":237.5,"aenergy":{"total":14.1},"temperature":{"tC":41.2,"tF":106.2}}``
- ``<id>/online``: ``true`` / ``false`` (retained, LWT)
- ``<id>/events/rpc``: notification frames, ``{"method":"NotifyStatus",
  "params":{"ts":1631266595.43,"switch:0":{…}}}``
- ``<id>/rpc``: requests, ``{"id":…,"src":"outpost","method":"Switch.Set",
  "params":{"id":0,"on":true}}``
- ``<src>/rpc``: responses, ``{"id":…,"src":"<shelly id>","dst":"outpost",
  "result":{"was_on":false}}`` or ``"error":{"code":…,"message":…}``

Readings are tagged ``component=<type:id>``; ``apower`` → ``power`` (W),
``aenergy.total`` → ``energy`` (Wh), ``temperature.tC`` → ``temperature`` (°C;
``tF`` is the same value again and is dropped), ``freq`` → ``frequency``,
``pf`` → ``power_factor``, cover ``current_pos`` → ``position``, ``input``
``state`` → ``input``, ``humidity`` ``rh`` → ``humidity``. ``NotifyStatus``
carries its own ``ts`` (UTC seconds), used as the reading time.

Commands: settings ``on``/``output`` (switch ``channel`` option, default 0),
``switch:N`` (bool), ``light:N`` (bool), ``brightness`` (0–100), ``cover:N`` or
``position`` (0–100) become one JSON-RPC request each, whose id is
``<command id>.<key>``; the device answers on ``<src>/rpc`` (option ``src``,
default ``outpost``: give each gateway its own) and that reply is the ack.
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
    check_topic_level,
)
from devices.conventions.helpers import (
    ReadingBuilder,
    base_topic,
    flatten,
    json_bytes,
    option,
    parse_json_object,
    text_of,
)
from devices.formats.common import epoch_to_ns
from devices.model import InvalidReading, Reading

_FIELDS = {
    "output": ("output", ""),
    "apower": ("power", "W"),
    "voltage": ("voltage", "V"),
    "current": ("current", "A"),
    "freq": ("frequency", "Hz"),
    "pf": ("power_factor", ""),
    "aenergy_total": ("energy", "Wh"),
    "ret_aenergy_total": ("returned_energy", "Wh"),
    "temperature_tC": ("temperature", "°C"),
    "tC": ("temperature", "°C"),
    "rh": ("humidity", "%"),
    "current_pos": ("position", "%"),
    "brightness": ("brightness", "%"),
    "percent": ("percent", "%"),
    "battery_percent": ("battery", "%"),
    "battery_V": ("battery_voltage", "V"),
    "external_present": ("external_power", ""),
    "rssi": ("rssi", "dBm"),
    "uptime": ("uptime", "s"),
}
_PER_TYPE = {"input": {"state": ("input", "")}, "cover": {"state": ("state", "")}}
_SKIPPED = {"id", "source", "tF", "temperature_tF", "timer_started_at", "timer_duration"}
# System components: only the figures worth a time series.
_SYSTEM = {"sys": {"uptime"}, "wifi": {"rssi"}, "cloud": set(), "mqtt": set(), "ble": set(),
           "ws": set(), "eth": set()}  # fmt: skip


def _component_readings(builder: ReadingBuilder, component: str, status: Mapping[str, Any]) -> None:
    kind = component.partition(":")[0]
    allowed = _SYSTEM.get(kind)
    tags = {"component": component}
    for name, value in flatten(status):
        if name in _SKIPPED or name.endswith("_minute_ts"):
            continue
        if allowed is not None and name not in allowed:
            continue
        metric, unit = _PER_TYPE.get(kind, {}).get(name) or _FIELDS.get(name, (name, ""))
        builder.add_lenient(metric, value, unit, tags)


class ShellyGen2Convention:
    name = "shelly_gen2"

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        options = options or {}
        self.base = base_topic(options, "")
        self._prefix = self.base + "/" if self.base else ""
        self.src = check_topic_level("src", option(options, "src", "outpost"))
        channel = options.get("channel", 0)
        if isinstance(channel, bool) or not isinstance(channel, int):
            raise ValueError("channel must be an integer")
        self.channel = channel

    def _split(self, topic: str) -> list[str] | None:
        if not topic.startswith(self._prefix):
            return None
        return topic[len(self._prefix) :].split("/")

    def subscriptions(self) -> list[str]:
        return [
            f"{self._prefix}+/status/+",
            f"{self._prefix}+/online",
            f"{self._prefix}+/events/rpc",
        ]

    def availability_subscriptions(self) -> list[str]:
        return [f"{self._prefix}+/online"]

    def decode(self, message: Message) -> list[Reading]:
        levels = self._split(message.topic)
        if levels is None or len(levels) < 2:
            raise DecodeError("unsupported_topic", f"not a Shelly topic: {message.topic}")
        device = check_device_id(levels[0])
        rest = levels[1:]
        if rest == ["online"] or rest == ["rpc"]:
            return []
        if len(rest) == 2 and rest[0] == "status":
            status = parse_json_object(message.payload)
            builder = ReadingBuilder(device, message)
            _component_readings(builder, rest[1], status)
            return builder.result()
        if rest == ["events", "rpc"]:
            return self._decode_notification(device, message)
        raise DecodeError("unsupported_topic", f"not a Shelly topic: {message.topic}")

    def _decode_notification(self, device: str, message: Message) -> list[Reading]:
        frame = parse_json_object(message.payload)
        if frame.get("method") not in ("NotifyStatus", "NotifyFullStatus"):
            return []  # NotifyEvent: button pushes and the like, not state
        params = frame.get("params")
        if not isinstance(params, dict):
            raise DecodeError("bad_frame", "NotifyStatus without params")
        ts = params.get("ts")
        # UTC seconds; a time outside 1970-2262 (or 1e300) refuses the frame, no ts at all
        # means the arrival time.
        ts_ns = (
            epoch_to_ns(ts) if isinstance(ts, (int, float)) and not isinstance(ts, bool) else 0
        )
        builder = ReadingBuilder(device, message, ts=ts_ns)
        for component, status in params.items():
            if isinstance(status, dict):
                _component_readings(builder, component, status)
        return builder.result()

    def availability(self, message: Message) -> Availability | None:
        levels = self._split(message.topic)
        if levels is None or len(levels) != 2 or levels[1] != "online":
            return None
        state = text_of(message.payload)
        if state not in ("true", "false"):
            return None
        return Availability(check_device_id(levels[0]), state == "true")

    def _request(self, key: str, value: Any) -> tuple[str, dict[str, Any]]:
        kind, _, index = key.partition(":")
        channel = int(index) if index.isdigit() else self.channel
        if key in ("on", "output") or (kind == "switch" and index.isdigit()):
            if isinstance(value, bool):
                return "Switch.Set", {"id": channel, "on": value}
        elif kind == "light" and index.isdigit() and isinstance(value, bool):
            return "Light.Set", {"id": channel, "on": value}
        elif key == "brightness" and _is_number(value):
            return "Light.Set", {"id": channel, "brightness": value}
        elif (key == "position" or (kind == "cover" and index.isdigit())) and _is_number(value):
            return "Cover.GoToPosition", {"id": channel, "pos": value}
        raise InvalidReading("bad_command", f"no Shelly RPC for setting {key}={value!r}")

    def encode_command(
        self, device: str, command_id: str, settings: Mapping[str, Any]
    ) -> list[Publish]:
        check_device_id(device)
        publishes = []
        for key, value in settings.items():
            method, params = self._request(key, value)
            frame = {"id": f"{command_id}.{key}", "src": self.src, "method": method,
                     "params": params}  # fmt: skip
            publishes.append(Publish(f"{self._prefix}{device}/rpc", json_bytes(frame)))
        return publishes

    def ack_subscriptions(self, device: str) -> list[str]:
        check_device_id(device)
        return [f"{self.src}/rpc"]

    def confirm(self, message: Message, pending: PendingCommand) -> Confirmation | None:
        if message.topic != f"{self.src}/rpc":
            return None
        try:
            frame = parse_json_object(message.payload)
        except InvalidReading:
            return None
        rpc_id = frame.get("id")
        prefix = pending.command_id + "."
        if not isinstance(rpc_id, str) or not rpc_id.startswith(prefix):
            return None
        key = rpc_id[len(prefix) :]
        if key not in pending.settings:
            return None
        error = frame.get("error")
        if error is not None:
            detail = error.get("message") if isinstance(error, dict) else error
            return Confirmation.refusal(f"Shelly RPC error: {detail}")
        if "result" in frame:
            return Confirmation(frozenset({key}))
        return None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
