"""Greenhouse physics: a pure model of air temperature, humidity and soil moisture.

``step(state, dt, actuators, params) -> state`` is the whole physics: no MQTT,
no clock, no randomness (sensor noise is added by ``GreenhouseSensor``), so it
is unit-tested on its own and the same inputs always give the same state.

The model is lumped (one air volume, one soil) and first order, with its
constants written as what a grower would observe rather than as heat
capacities:

- **air temperature** relaxes toward the outside temperature with time
  constant ``exchange_time`` (vents closed); the sun adds heat so that, at full
  sun and without ventilation, the air settles ``sun_gain`` °C above outside;
  the heater at 100 % adds ``heater_gain`` °C the same way; the fan at speed
  ``s`` % multiplies the air exchange by ``1 + fan_factor × s / 100``;
- **humidity** is carried as water vapour density (g/m³): plants transpire
  (with the sun and the soil's water), ventilation brings it toward the
  outside air's; relative humidity is vapour / saturation at the air
  temperature, so heating the air dries it and the fan brings outside air in;
- **soil moisture** (% volumetric) dries toward the wilting point, faster when
  sunny and warm, and the pump wets it toward field capacity.

The sun follows a half-sine day curve between ``sunrise`` and ``sunset``;
``start_hour`` is the simulated local time at t = 0, so a demo can start at
noon in a warm greenhouse and cross a 30 °C threshold within a couple of
simulated minutes.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from simulators.durations import Duration
from simulators.model import Number, device_rng

METRICS = ("temperature", "humidity", "soil_moisture")
UNITS = {"temperature": "°C", "humidity": "%", "soil_moisture": "%"}
# Explicit Euler is exact enough with steps far below the shortest time
# constant (minutes); long gaps (a high --speed, a slow --rate) are cut up.
MAX_STEP = 1.0


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Outside(_Frozen):
    temperature: float = 18.0
    humidity: float = Field(default=60.0, ge=0, le=100)


class Sun(_Frozen):
    strength: float = Field(default=1.0, ge=0, description="1 = a clear summer day")
    sunrise: float = Field(default=6.0, ge=0, lt=24)
    sunset: float = Field(default=20.0, gt=0, le=24)

    @model_validator(mode="after")
    def _day_has_length(self) -> Sun:
        if self.sunset <= self.sunrise:
            raise ValueError(f"sunset {self.sunset} is not after sunrise {self.sunrise}")
        return self


class Initial(_Frozen):
    temperature: float = 24.0
    humidity: float = Field(default=65.0, ge=0, le=100)
    soil_moisture: float = Field(default=45.0, ge=0, le=100)


class Air(_Frozen):
    exchange_time: Duration = Field(default=1200.0, gt=0, description="vents closed, fan off")
    sun_gain: float = Field(default=22.0, ge=0, description="°C above outside at full sun, no fan")
    heater_gain: float = Field(default=12.0, ge=0, description="°C above outside, heater at 100 %")
    fan_factor: float = Field(default=3.4, ge=0, description="extra air exchanges at fan 100 %")
    transpiration: float = Field(
        default=24.0, ge=0, description="g/m³ above outside, full sun, wet"
    )


class Soil(_Frozen):
    dry_time: Duration = Field(default=21600.0, gt=0, description="toward the wilting point")
    pump_time: Duration = Field(
        default=600.0, gt=0, description="toward field capacity, pump at 100 %"
    )
    field_capacity: float = Field(default=80.0, gt=0, le=100)
    wilting_point: float = Field(default=10.0, ge=0, lt=100)

    @model_validator(mode="after")
    def _ordered(self) -> Soil:
        if self.wilting_point >= self.field_capacity:
            raise ValueError("wilting_point must be below field_capacity")
        return self


class SensorNoise(_Frozen):
    """What a greenhouse sensor adds to the true value."""

    noise: float = Field(default=0.0, ge=0, description="white noise std dev per sample")
    spread: float = Field(default=0.0, ge=0, description="per-device calibration offset, ±")
    decimals: int = Field(default=2, ge=0, le=9)


class Sensors(_Frozen):
    """Sensor error per metric; defaults are a typical cheap greenhouse sensor's."""

    temperature: SensorNoise = SensorNoise(noise=0.05, spread=0.3, decimals=2)
    humidity: SensorNoise = SensorNoise(noise=0.3, spread=1.5, decimals=1)
    soil_moisture: SensorNoise = SensorNoise(noise=0.2, spread=2.0, decimals=1)


class GreenhouseParams(_Frozen):
    """A scenario's ``physics:`` section (every field has a sane default)."""

    model: Literal["greenhouse"] = "greenhouse"
    start_hour: float = Field(default=12.0, ge=0, lt=24, description="simulated local time at t=0")
    outside: Outside = Outside()
    sun: Sun = Sun()
    initial: Initial = Initial()
    air: Air = Air()
    soil: Soil = Soil()
    sensors: Sensors = Sensors()


@dataclass(frozen=True)
class Actuators:
    """Actuator levels, each 0..100 (%): what ``step`` reads of the world's machines."""

    fan: float = 0.0
    heater: float = 0.0
    pump: float = 0.0


@dataclass(frozen=True)
class State:
    """The greenhouse at simulated time ``t`` (seconds since the start)."""

    t: float
    temperature: float  # air, °C
    vapour: float  # water vapour density, g/m³
    soil_moisture: float  # %

    @property
    def humidity(self) -> float:
        """Relative humidity (%) of the air, saturating at 100."""
        return min(100.0, 100.0 * self.vapour / saturation_vapour(self.temperature))


def saturation_vapour(temperature: float) -> float:
    """Saturation water vapour density (g/m³) at ``temperature`` °C.

    Magnus formula (WMO 2008 constants) for the vapour pressure in hPa, then the
    ideal gas law for water vapour: 216.7 g·K/(m³·hPa).
    """
    pressure = 6.112 * math.exp(17.62 * temperature / (243.12 + temperature))
    return 216.7 * pressure / (temperature + 273.15)


def initial_state(params: GreenhouseParams) -> State:
    init = params.initial
    return State(
        t=0.0,
        temperature=init.temperature,
        vapour=init.humidity / 100.0 * saturation_vapour(init.temperature),
        soil_moisture=init.soil_moisture,
    )


def sunshine(params: GreenhouseParams, t: float) -> float:
    """Sun strength at simulated time ``t``: 0 at night, ``strength`` at solar noon."""
    sun = params.sun
    hour = (params.start_hour + t / 3600.0) % 24.0
    if not sun.sunrise < hour < sun.sunset:
        return 0.0
    return sun.strength * math.sin(math.pi * (hour - sun.sunrise) / (sun.sunset - sun.sunrise))


def step(
    state: State, dt: float, actuators: Actuators, params: GreenhouseParams | None = None
) -> State:
    """The greenhouse ``dt`` simulated seconds later, with ``actuators`` held constant."""
    if dt < 0:
        raise ValueError(f"dt must not be negative: {dt}")
    p = params or GreenhouseParams()
    while dt > 0:
        h = min(dt, MAX_STEP)
        state = _euler(state, h, actuators, p)
        dt -= h
    return state


def _level(value: float) -> float:
    return min(max(value, 0.0), 100.0) / 100.0


def _euler(s: State, h: float, act: Actuators, p: GreenhouseParams) -> State:
    air, soil = p.air, p.soil
    sun = sunshine(p, s.t)
    fan, heater, pump = _level(act.fan), _level(act.heater), _level(act.pump)
    k = 1.0 / air.exchange_time  # air exchanges per second, vents closed
    exchange = k * (1.0 + air.fan_factor * fan)

    # Temperature: gains are scaled by k so that they read as equilibrium rises.
    heating = k * (air.sun_gain * sun + air.heater_gain * heater)
    d_temp = heating - exchange * (s.temperature - p.outside.temperature)

    # Vapour: plants transpire with light (a little at night) and soil water.
    wet = (s.soil_moisture - soil.wilting_point) / (soil.field_capacity - soil.wilting_point)
    transpiration = k * air.transpiration * (0.1 + 0.9 * min(sun, 1.0)) * min(max(wet, 0.0), 1.0)
    outside_vapour = p.outside.humidity / 100.0 * saturation_vapour(p.outside.temperature)
    d_vapour = transpiration - exchange * (s.vapour - outside_vapour)

    # Soil: evaporation grows with sun and warmth; the pump fills toward capacity.
    evaporation = (0.5 + sun) * max(0.1, 1.0 + 0.03 * (s.temperature - 20.0))
    drying = evaporation * (s.soil_moisture - soil.wilting_point) / soil.dry_time
    watering = pump * (soil.field_capacity - s.soil_moisture) / soil.pump_time
    d_soil = watering - max(drying, 0.0)

    # Condensation: vapour above saturation leaves the air (fogged glass).
    vapour = min(s.vapour + h * d_vapour, saturation_vapour(s.temperature + h * d_temp))
    return replace(
        s,
        t=s.t + h,
        temperature=s.temperature + h * d_temp,
        vapour=max(vapour, 0.0),
        soil_moisture=min(max(s.soil_moisture + h * d_soil, 0.0), 100.0),
    )


class Greenhouse:
    """The one shared greenhouse of a simulation: state, actuator levels, time.

    Sensors read it and actuators set it, each at its own simulated time:
    ``advance(t)`` integrates up to ``t`` with the levels in force; a time
    earlier than the state's (a sample scheduled just before a command was
    applied) reads the current state rather than going back.
    """

    def __init__(self, params: GreenhouseParams) -> None:
        self.params = params
        self.state = initial_state(params)
        self.actuators = Actuators()

    def advance(self, t: float) -> State:
        if t > self.state.t:
            self.state = step(self.state, t - self.state.t, self.actuators, self.params)
        return self.state

    def set_level(self, kind: Literal["fan", "heater", "pump"], level: float, t: float) -> None:
        """Change one actuator's level from simulated time ``t`` on."""
        self.advance(t)
        self.actuators = replace(self.actuators, **{kind: float(level)})


class GreenhouseSensor:
    """A sensor in the greenhouse (implements ``Model``): true values + its own error."""

    def __init__(
        self,
        device: str,
        greenhouse: Greenhouse,
        metrics: list[str] | None = None,
        seed: int | str | None = None,
    ) -> None:
        names = tuple(metrics or METRICS)
        unknown = [m for m in names if m not in METRICS]
        if unknown:
            raise ValueError(f"a greenhouse sensor has no metric {unknown[0]!r}")
        self.device = device
        self._greenhouse = greenhouse
        self._names = names
        self._rng: random.Random = device_rng(seed, device)
        errors = greenhouse.params.sensors
        self._noise: dict[str, SensorNoise] = {m: getattr(errors, m) for m in names}
        self._offset = {m: self._rng.uniform(-n.spread, n.spread) for m, n in self._noise.items()}

    @property
    def metrics(self) -> tuple[str, ...]:
        return self._names

    def next(self, t: float) -> dict[str, Number]:
        state = self._greenhouse.advance(t)
        out: dict[str, Number] = {}
        for name in self._names:
            spec = self._noise[name]
            value = float(getattr(state, name)) + self._offset[name]
            if spec.noise:
                value += self._rng.gauss(0.0, spec.noise)
            if name != "temperature":
                value = min(max(value, 0.0), 100.0)
            out[name] = round(value) if spec.decimals == 0 else round(value, spec.decimals)
        return out
