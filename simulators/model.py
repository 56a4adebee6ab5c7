"""Simulated sensor values, as a pure function of (seed, device, time).

No MQTT, no clock, no global random state: a ``SensorModel`` is handed the
simulated time of each sample and returns the metric values, so the same seed
and the same sample times give the same values in a test, in ``outpost
simulate`` and in the later closed-loop scenario (which reuses ``MetricSpec``
and the ``Model`` protocol for its physics).

Each metric's value is the sum of

- a **baseline**, offset per device by up to ``±spread`` (two sensors in one
  room never read the same);
- a **drift**: a constant trend in units per hour (a battery draining);
- a **wander**: a mean-reverting random walk (Ornstein-Uhlenbeck) with
  stationary standard deviation ``wander`` and correlation time
  ``wander_time``; it is sampled exactly, so its statistics do not depend on the
  sample rate or ``--speed``;
- white **noise** of standard deviation ``noise`` per sample (sensor jitter);

clamped to the sensor's ``[min, max]`` range and rounded to ``decimals``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator

Number = float | int
Value = float | int | str  # what a sample may carry (an actuator's "on"/"off")


class MetricSpec(BaseModel):
    """How one metric of a simulated sensor behaves (a scenario's ``metrics:`` entry)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    baseline: float
    unit: str = ""
    spread: float = Field(0.0, ge=0, description="per-device baseline offset, ±")
    drift: float = Field(0.0, description="constant trend, units per hour")
    wander: float = Field(0.0, ge=0, description="std dev of the slow random walk")
    wander_time: float = Field(600.0, gt=0, description="correlation time of the walk, s")
    noise: float = Field(0.0, ge=0, description="white noise std dev per sample")
    min: float = -math.inf
    max: float = math.inf
    decimals: int = Field(2, ge=0, le=9)

    @model_validator(mode="after")
    def _range_holds_baseline(self) -> MetricSpec:
        if not self.min <= self.baseline <= self.max:
            raise ValueError(f"baseline {self.baseline} outside [min {self.min}, max {self.max}]")
        return self


class Model(Protocol):
    """What the MQTT loop needs from a simulated device's value source.

    ``next(t)`` is called with non-decreasing simulated times in seconds since
    the start of the simulation and returns one value per metric. The
    greenhouse's sensors (``greenhouse.GreenhouseSensor``) and actuators
    (``actuators.Actuator``, which also take commands) implement it too.
    """

    @property
    def device(self) -> str: ...

    @property
    def metrics(self) -> tuple[str, ...]: ...

    def next(self, t: float) -> Mapping[str, Value]: ...


def device_rng(seed: int | str | None, device: str) -> random.Random:
    """A private generator per device: same seed and id → same stream.

    String seeds are hashed with SHA-512 by ``random.Random``, so this does not
    depend on ``PYTHONHASHSEED``; ``None`` draws from the OS.
    """
    if seed is None:
        return random.Random()
    return random.Random(f"outpost-sim/{seed}/{device}")


class _MetricState:
    __slots__ = ("center", "spec", "walk")

    def __init__(self, spec: MetricSpec, rng: random.Random) -> None:
        self.spec = spec
        self.center = spec.baseline + rng.uniform(-spec.spread, spec.spread)
        # Start the walk from its stationary distribution, not from zero, so
        # the first minutes of a run look like any other minutes.
        self.walk = rng.gauss(0.0, spec.wander) if spec.wander else 0.0


class SensorModel:
    """One simulated multi-metric sensor (temperature, humidity, …).

    >>> m = SensorModel("sim-1", {"temperature": MetricSpec(baseline=21)}, seed=1)
    >>> m.next(0.0)
    {'temperature': 21.0}
    """

    def __init__(
        self,
        device: str,
        metrics: Mapping[str, MetricSpec],
        seed: int | str | None = None,
    ) -> None:
        if not metrics:
            raise ValueError("a sensor needs at least one metric")
        self.device = device
        self._rng = device_rng(seed, device)
        self._state = {name: _MetricState(spec, self._rng) for name, spec in metrics.items()}
        self._last_t: float | None = None

    @property
    def metrics(self) -> tuple[str, ...]:
        return tuple(self._state)

    def next(self, t: float) -> dict[str, Number]:
        """Values of every metric at simulated time ``t`` (seconds, non-decreasing)."""
        if self._last_t is not None and t < self._last_t:
            raise ValueError(f"time went backwards: {t} < {self._last_t}")
        dt = 0.0 if self._last_t is None else t - self._last_t
        self._last_t = t
        gauss = self._rng.gauss
        out: dict[str, Number] = {}
        for name, st in self._state.items():
            spec = st.spec
            if spec.wander and dt > 0:
                # Exact OU step: keeps the stationary std dev at `wander`
                # whatever dt is, so --rate and --speed do not change the look.
                decay = math.exp(-dt / spec.wander_time)
                st.walk = st.walk * decay + spec.wander * math.sqrt(1 - decay * decay) * gauss()
            center = min(max(st.center + spec.drift * t / 3600.0, spec.min), spec.max)
            value = center + st.walk
            if spec.noise:
                value += gauss(0.0, spec.noise)
            value = min(max(value, spec.min), spec.max)
            out[name] = round(value) if spec.decimals == 0 else round(value, spec.decimals)
        return out
