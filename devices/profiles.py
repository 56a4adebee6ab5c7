"""Sensor profiles as data: what a sensor's fields mean, in which unit, within which range.

A profile is a few lines built from small helpers, each carrying the metric
name, unit, scale and a sane range, in the manner of zigbee-herdsman-converters'
``modernExtend``::

    MY_SENSOR = Profile("my_sensor", (
        temperature(min=-20, max=60),              # datasheet operating range
        humidity(),
        field("co2", unit="ppm", min=400, max=5000, aliases=("co2_ppm",)),
    ))

Mapping a raw frame (a dict parsed from a serial line) through a profile:

- each frame key is looked up by the field's metric name or one of its
  aliases (``t``, ``temp`` → ``temperature``), case-insensitively;
- the value is multiplied by ``scale`` and shifted by ``offset`` (a sensor that
  sends tenths of a degree: ``scale=0.1``);
- a value outside ``[min, max]`` is dropped and counted
  (``out_of_range:<metric>``): it is a wiring fault or a bad read, not weather
  — a DHT22 reporting 140 % humidity is lying;
- keys the profile does not know pass through unchanged (a line counter
  ``seq`` must still reach InfluxDB) and are counted as ``unmapped``.

Without a profile (``profile=None``) every scalar passes through as is.
Register a new profile by adding it to :data:`PROFILES` (name in lower case).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from devices.model import InvalidReading, Reading, Value, check_identifier, check_value


@dataclass(frozen=True, slots=True)
class Field:
    """One measured quantity: its metric, unit, conversion and plausible range."""

    metric: str
    unit: str = ""
    scale: float = 1.0
    offset: float = 0.0
    min: float | None = None
    max: float | None = None
    aliases: tuple[str, ...] = ()

    def convert(self, raw: Any) -> float:
        """The scaled value; raises InvalidReading(``out_of_range``) outside the range."""
        value = check_value(raw)
        if isinstance(value, bool):
            raise InvalidReading("not_a_number", f"{self.metric}: {value!r}")
        if isinstance(value, str):
            text = value
            try:
                value = float(text)  # kv/csv framings deliver text
            except ValueError:
                raise InvalidReading("not_a_number", f"{self.metric}: {text[:40]!r}") from None
        value = value * self.scale + self.offset
        if not math.isfinite(value):
            raise InvalidReading("non_finite", f"{self.metric}: {value}")
        if (self.min is not None and value < self.min) or (
            self.max is not None and value > self.max
        ):
            raise InvalidReading(
                "out_of_range", f"{self.metric} {value:g} outside [{self.min}, {self.max}]"
            )
        return value


def field(
    metric: str,
    unit: str = "",
    *,
    min: float | None = None,
    max: float | None = None,
    scale: float = 1.0,
    offset: float = 0.0,
    aliases: tuple[str, ...] = (),
) -> Field:
    check_identifier("metric", metric)
    return Field(metric, unit, scale, offset, min, max, aliases)


def temperature(
    unit: str = "°C", min: float = -40, max: float = 85, scale: float = 1.0,
    aliases: tuple[str, ...] = ("t", "temp", "tc", "temp_c"),
) -> Field:  # fmt: skip
    return field("temperature", unit, min=min, max=max, scale=scale, aliases=aliases)


def humidity(
    unit: str = "%", min: float = 0, max: float = 100, scale: float = 1.0,
    aliases: tuple[str, ...] = ("h", "hum", "rh"),
) -> Field:  # fmt: skip
    return field("humidity", unit, min=min, max=max, scale=scale, aliases=aliases)


def pressure(
    unit: str = "hPa", min: float = 300, max: float = 1100, scale: float = 1.0,
    aliases: tuple[str, ...] = ("p", "press", "pres"),
) -> Field:  # fmt: skip
    return field("pressure", unit, min=min, max=max, scale=scale, aliases=aliases)


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    fields: tuple[Field, ...]

    def lookup(self) -> dict[str, Field]:
        table: dict[str, Field] = {}
        for f in self.fields:
            for key in (f.metric, *f.aliases):
                table[key.lower()] = f
        return table


# Ranges are the datasheets' measurement ranges: outside them the part cannot
# have measured what it reports.
PROFILES: dict[str, Profile] = {
    # Aosong DHT22/AM2302 datasheet: humidity 0–100 %RH, temperature −40…80 °C.
    "dht22": Profile("dht22", (temperature(max=80), humidity())),
    # Bosch BME280 datasheet (BST-BME280-DS002) §1: operating −40…85 °C,
    # 0–100 %RH, 300–1100 hPa.
    "bme280": Profile("bme280", (temperature(), humidity(), pressure())),
    # Maxim DS18B20 datasheet: measures −55 °C to +125 °C.
    "ds18b20": Profile("ds18b20", (temperature(min=-55, max=125),)),
    # Sensirion SHT3x-DIS datasheet: −40…125 °C, 0–100 %RH.
    "sht31": Profile("sht31", (temperature(max=125), humidity())),
}


class FrameMapper:
    """Maps raw frames of one device through an optional profile to readings.

    ``counters`` collects ``out_of_range:<metric>``, ``bad_value:<metric>`` and
    ``unmapped`` (keys passed through because the profile does not name them).
    """

    def __init__(
        self, device: str, profile: Profile | None, counters: Counter[str] | None = None
    ) -> None:
        self.device = device
        self.profile = profile
        self._fields = profile.lookup() if profile else {}
        self.counters: Counter[str] = counters if counters is not None else Counter()

    def map(
        self, frame: Mapping[str, Any], ts: int, tags: Mapping[str, str] | None = None
    ) -> list[Reading]:
        readings = []
        value: Value
        for key, raw in frame.items():
            spec = self._fields.get(key.lower()) if self.profile else None
            try:
                if spec is not None:
                    metric, value, unit = spec.metric, spec.convert(raw), spec.unit
                else:
                    if self.profile is not None:
                        self.counters["unmapped"] += 1
                    if raw is None or isinstance(raw, (dict, list)):
                        continue
                    check_identifier("metric", key)
                    metric, value, unit = key, check_value(raw), ""
            except InvalidReading as exc:
                self.counters[f"{exc.reason}:{spec.metric if spec else key}"] += 1
                continue
            readings.append(Reading(self.device, metric, value, ts, unit, dict(tags or {})))
        return readings


def map_frame(
    frame: Mapping[str, Any],
    profile: Profile | str | None,
    device: str,
    ts: int,
    counters: Counter[str] | None = None,
) -> list[Reading]:
    """One-shot :class:`FrameMapper` (``profile`` by object or name)."""
    if isinstance(profile, str):
        profile = get_profile(profile)
    return FrameMapper(device, profile, counters).map(frame, ts)


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name.lower()]
    except KeyError:
        raise KeyError(f"unknown sensor profile {name!r}; known: {', '.join(PROFILES)}") from None
