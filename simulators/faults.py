"""Fault injection: what goes wrong with which device, and when (simulated time).

A scenario's ``faults:`` list, each entry one device and one window
``[start, end)`` of simulated time (``end`` omitted: until the run ends)::

    faults:
      - {device: gh-2, kind: stuck, start: 10m, end: 15m}      # repeats its last values
      - {device: gh-2, kind: spikes, start: 0s, probability: 0.05, magnitude: 15}
      - {device: gh-1, kind: dropout, start: 20m, end: 22m}    # no readings, still online
      - {device: gh-2, kind: offline, start: 30m, end: 32m}    # will fires, then back online
      - {device: heater-1, kind: ignore_commands, start: 0s}   # never acks, never acts

- ``stuck``: every sample repeats the values published last before the window
  (or its first sample's);
- ``spikes``: in each sample, with ``probability``, one metric is off by
  ± ``magnitude`` × (1..2);
- ``dropout``: no samples; the device stays ``online``;
- ``offline``: no samples, no commands; with ``mode: will`` (default) the
  connection drops without a DISCONNECT, so the broker publishes the device's
  retained ``offline`` will, as when a device loses power; with ``mode: clean``
  the device says ``offline`` itself first; back ``online`` at ``end``;
- ``ignore_commands``: an actuator's ``set`` messages get no ack, change nothing.

``stuck`` and ``spikes`` take ``metrics: [...]`` (default: all). The
sample-level faults are a pure function of (seed, device, time, values):
``FaultPlan.apply``. ``offline`` is carried out by the runner on the device's
MQTT connection (``Link.go_offline``), at the wall time of ``start``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from simulators.durations import Duration
from simulators.model import Value, device_rng

KINDS = ("stuck", "spikes", "dropout", "offline", "ignore_commands")


class _Fault(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    device: str
    start: Duration = Field(default=0.0, ge=0)
    end: Duration | None = None

    @model_validator(mode="after")
    def _window(self) -> _Fault:
        if self.end is not None and self.end <= self.start:
            raise ValueError(f"end ({self.end:g} s) must be after start ({self.start:g} s)")
        return self

    def active(self, t: float) -> bool:
        return self.start <= t < (math.inf if self.end is None else self.end)


class StuckFault(_Fault):
    kind: Literal["stuck"]
    metrics: list[str] | None = None


class SpikesFault(_Fault):
    kind: Literal["spikes"]
    probability: float = Field(default=0.1, gt=0, le=1, description="per sample")
    magnitude: float = Field(default=10.0, gt=0, description="units of the metric")
    metrics: list[str] | None = None


class DropoutFault(_Fault):
    kind: Literal["dropout"]


class OfflineFault(_Fault):
    kind: Literal["offline"]
    mode: Literal["will", "clean"] = "will"


class IgnoreCommandsFault(_Fault):
    kind: Literal["ignore_commands"]


FaultSpec = Annotated[
    StuckFault | SpikesFault | DropoutFault | OfflineFault | IgnoreCommandsFault,
    Field(discriminator="kind"),
]


class FaultPlan:
    """Every fault of a run, applied per sample; seeded like the sensors."""

    def __init__(self, faults: Sequence[FaultSpec] = (), seed: int | str | None = None) -> None:
        self.faults = list(faults)
        self._seed = seed
        self._by_device: dict[str, list[FaultSpec]] = {}
        for fault in self.faults:
            self._by_device.setdefault(fault.device, []).append(fault)
        self._rngs = {d: device_rng(f"faults/{seed}", d) for d in self._by_device}
        self._last: dict[str, dict[str, Value]] = {}
        self.suppressed = 0  # samples not published (dropout, offline)
        self.spikes = 0

    def __bool__(self) -> bool:
        return bool(self.faults)

    def apply(self, device: str, t: float, values: Mapping[str, Value]) -> dict[str, Value] | None:
        """What ``device`` publishes at simulated time ``t`` for ``values``; None: nothing."""
        faults = [f for f in self._by_device.get(device, ()) if f.active(t)]
        if not faults:
            self._last[device] = dict(values)
            return self._last[device]
        if any(f.kind in ("dropout", "offline") for f in faults):
            self.suppressed += 1
            return None
        out = dict(values)
        last = self._last.get(device, {})
        for fault in faults:
            if isinstance(fault, StuckFault):
                for m in fault.metrics or out:
                    if m in last and m in out:
                        out[m] = last[m]
        self._last[device] = dict(out)  # a spike is not what a stuck sensor repeats
        for fault in faults:
            if isinstance(fault, SpikesFault):
                self._spike(device, fault, out)
        return out

    def _spike(self, device: str, fault: SpikesFault, out: dict[str, Value]) -> None:
        rng = self._rngs[device]
        if rng.random() >= fault.probability:
            return
        numeric = [m for m in fault.metrics or out if isinstance(out.get(m), (int, float))]
        if not numeric:
            return
        metric = rng.choice(numeric)
        value = out[metric]
        assert isinstance(value, (int, float))
        offset = fault.magnitude * (1.0 + rng.random()) * rng.choice((-1.0, 1.0))
        out[metric] = round(value + offset, 2)
        self.spikes += 1

    def ignores_commands(self, device: str, t: float) -> bool:
        return any(
            f.kind == "ignore_commands" and f.active(t) for f in self._by_device.get(device, ())
        )

    def offline(self) -> list[OfflineFault]:
        return [f for f in self.faults if isinstance(f, OfflineFault)]
