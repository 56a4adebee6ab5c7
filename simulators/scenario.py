"""Scenarios: which simulated devices exist and how their metrics behave (YAML).

A scenario file of independent sensors::

    name: sensors
    description: three generic room sensors
    devices:                 # either a group …
      count: 3               # --devices overrides
      prefix: sim-           # --prefix overrides; ids are sim-1, sim-2, …
      metrics: [temperature, humidity]   # optional: default every metric below
    # devices:               # … or an explicit list
    #   - {id: gh-1, metrics: [temperature]}
    metrics:
      temperature: {baseline: 21, unit: °C, spread: 1.5, wander: 0.8, noise: 0.05,
                    min: -40, max: 85, decimals: 2}

or a closed loop: a ``physics:`` section (``greenhouse.GreenhouseParams``)
instead of ``metrics:``, whose sensors read the simulated greenhouse, and
``actuators:`` (``actuators.ActuatorSpec``) that act on it. Any scenario may
have ``faults:`` (``faults.FaultSpec``)::

    name: greenhouse
    devices: [{id: gh-1}, {id: gh-2, metrics: [temperature, humidity]}]
    physics: {start_hour: 12, initial: {temperature: 29}}
    actuators: [{id: fan-1, kind: fan}, {id: pump-1, kind: pump}]
    faults: [{device: gh-2, kind: stuck, start: 10m, end: 12m}]

``load_scenario`` validates the whole file up front and raises
``ScenarioError`` carrying every problem as ``file:line: message``.
Built-in scenarios live in ``simulators/scenarios/NAME.yaml``.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from simulators.actuators import Actuator, ActuatorSpec, Kind
from simulators.faults import KINDS as FAULT_KINDS
from simulators.faults import FaultPlan, FaultSpec, IgnoreCommandsFault, SpikesFault, StuckFault
from simulators.greenhouse import METRICS as GREENHOUSE_METRICS
from simulators.greenhouse import Greenhouse, GreenhouseParams, GreenhouseSensor
from simulators.model import MetricSpec, Model, SensorModel
from simulators.payloads import check_topic_level

BUILTIN_PACKAGE = "simulators.scenarios"
DEFAULT_SCENARIO = "sensors"


class ScenarioError(Exception):
    """A scenario could not be loaded; ``problems`` lists every ``file:line: message``."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class DeviceGroup(BaseModel):
    """``count`` identical sensors named ``{prefix}1 … {prefix}{count}``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    count: int = Field(3, ge=1)
    prefix: str = "sim-"
    metrics: list[str] | None = None


class DeviceSpec(BaseModel):
    """One named sensor."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    metrics: list[str] | None = None

    @field_validator("id")
    @classmethod
    def _valid_id(cls, value: str) -> str:
        return check_topic_level(value)


class Scenario(BaseModel):
    """A validated scenario file (see the module docstring for the format)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    description: str = ""
    devices: DeviceGroup | list[DeviceSpec] = Field(
        default_factory=lambda: DeviceGroup.model_validate({})
    )
    metrics: dict[str, MetricSpec] = Field(default_factory=dict)
    physics: GreenhouseParams | None = None
    actuators: list[ActuatorSpec] = Field(default_factory=list)
    faults: list[FaultSpec] = Field(default_factory=list)

    @field_validator("metrics")
    @classmethod
    def _valid_metric_names(cls, metrics: dict[str, MetricSpec]) -> dict[str, MetricSpec]:
        for name in metrics:
            check_topic_level(name, "metric name")
            if name == "ts":
                raise ValueError("'ts' is the timestamp field of JSON samples, not a metric")
        return metrics

    @property
    def metric_names(self) -> tuple[str, ...]:
        """What the scenario's sensors measure."""
        return GREENHOUSE_METRICS if self.physics is not None else tuple(self.metrics)

    def problems(self) -> list[tuple[tuple[str | int, ...], str]]:
        """Checks across sections, each as (location in the file, message)."""
        out: list[tuple[tuple[str | int, ...], str]] = []
        if self.physics is None and not self.metrics:
            out.append(((), "a scenario needs metrics: (or a physics: section)"))
        if self.physics is not None and self.metrics:
            out.append(
                (
                    ("metrics",),
                    "a physics scenario's sensors measure "
                    f"{', '.join(GREENHOUSE_METRICS)}; leave metrics: out",
                )
            )
        known = set(self.metric_names)
        if isinstance(self.devices, list):
            for i, dev in enumerate(self.devices):
                for m in dev.metrics or ():
                    if m not in known:
                        out.append((("devices", i, "metrics"), f"{dev.id}: unknown metric {m!r}"))
        elif self.devices.metrics:
            for m in self.devices.metrics:
                if m not in known:
                    out.append((("devices", "metrics"), f"unknown metric {m!r}"))
        if isinstance(self.devices, list):
            sensors = {d.id: list(d.metrics or known) for d in self.devices}
        else:
            group = self.devices
            ids = (f"{group.prefix}{i}" for i in range(1, group.count + 1))
            sensors = {d: list(group.metrics or known) for d in ids}
        kinds: set[str] = set()
        actuators: dict[str, Kind] = {}
        for i, act in enumerate(self.actuators):
            if act.id in sensors or act.id in actuators:
                out.append((("actuators", i, "id"), f"device id {act.id!r} is already used"))
                continue
            if self.physics is not None and act.kind in kinds:
                out.append((("actuators", i, "kind"), f"the greenhouse has one {act.kind}"))
            kinds.add(act.kind)
            actuators[act.id] = act.kind
        for i, fault in enumerate(self.faults):
            if fault.device not in sensors and fault.device not in actuators:
                out.append(
                    (("faults", i, "device"), f"no device {fault.device!r} in this scenario")
                )
            elif isinstance(fault, IgnoreCommandsFault) and fault.device not in actuators:
                out.append(
                    (("faults", i, "kind"), f"{fault.device} is a sensor: it takes no commands")
                )
            elif isinstance(fault, StuckFault | SpikesFault):
                metrics = sensors.get(fault.device) or []
                if fault.device in actuators:
                    metrics = list(Actuator(fault.device, actuators[fault.device]).metrics)
                for m in fault.metrics or ():
                    if m not in metrics:
                        out.append(
                            (("faults", i, "metrics"), f"{fault.device} has no metric {m!r}")
                        )
        return out

    def device_plan(
        self, count: int | None = None, prefix: str | None = None
    ) -> list[tuple[str, list[str]]]:
        """``(device id, metric names)`` for every device, with CLI overrides applied."""
        if isinstance(self.devices, list):
            if count is not None and count != len(self.devices):
                raise ScenarioError(
                    [f"scenario {self.name!r} lists its devices; --devices cannot change them"]
                )
            plan = [(d.id, d.metrics) for d in self.devices]
        else:
            group = self.devices
            n = group.count if count is None else count
            pre = group.prefix if prefix is None else prefix
            plan = [(f"{pre}{i}", group.metrics) for i in range(1, n + 1)]
        out = []
        for device, names in plan:
            try:
                check_topic_level(device)
            except ValueError as exc:
                raise ScenarioError([str(exc)]) from None
            unknown = [m for m in names or () if m not in self.metric_names]
            if unknown:
                raise ScenarioError([f"device {device}: unknown metric {unknown[0]!r}"])
            out.append((device, list(names or self.metric_names)))
        return out

    def build_models(
        self, seed: int | str | None, count: int | None = None, prefix: str | None = None
    ) -> list[Model]:
        """One model per device (sensors, then actuators), each with its own seeded generator.

        Independent ``SensorModel``s, or, with ``physics:``, ``GreenhouseSensor``s
        and ``Actuator``s sharing one new ``Greenhouse``.
        """
        plan = self.device_plan(count, prefix)
        models: list[Model] = []
        if self.physics is None:
            models += [
                SensorModel(device, {m: self.metrics[m] for m in names}, seed=seed)
                for device, names in plan
            ]
            greenhouse = None
        else:
            greenhouse = Greenhouse(self.physics)
            models += [GreenhouseSensor(d, greenhouse, names, seed) for d, names in plan]
        models += [Actuator(a.id, a.kind, greenhouse, a.initial) for a in self.actuators]
        return models

    def build_faults(self, seed: int | str | None) -> FaultPlan:
        return FaultPlan(self.faults, seed)


def builtin_scenarios() -> list[str]:
    files = importlib.resources.files(BUILTIN_PACKAGE).iterdir()
    return sorted(f.name.removesuffix(".yaml") for f in files if f.name.endswith(".yaml"))


def load_scenario(name_or_path: str | Path = DEFAULT_SCENARIO) -> Scenario:
    """Load a built-in scenario by name, or a scenario file by path."""
    text = str(name_or_path)
    path = Path(text)
    if path.suffix in (".yaml", ".yml") or path.exists():
        try:
            source = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ScenarioError([f"{path}: cannot read: {exc.strerror}"]) from None
        return parse_scenario(source, str(path))
    resource = importlib.resources.files(BUILTIN_PACKAGE) / f"{text}.yaml"
    if not resource.is_file():
        known = ", ".join(builtin_scenarios())
        raise ScenarioError([f"unknown scenario {text!r} (built-in: {known}; or a .yaml file)"])
    return parse_scenario(resource.read_text(encoding="utf-8"), f"<scenario {text}>")


def parse_scenario(source: str, filename: str = "<scenario>") -> Scenario:
    try:
        root = yaml.compose(source, Loader=yaml.SafeLoader)
        data = yaml.safe_load(source)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        raise ScenarioError([f"{filename}:{line}: invalid YAML: {exc}"]) from None
    if not isinstance(data, dict):
        raise ScenarioError([f"{filename}:1: a scenario is a mapping (name:, devices:, metrics:)"])
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = _strip_union_tags(err["loc"])
            problems.append(_problem(filename, root, loc, err["msg"]))
        raise ScenarioError(problems) from None
    cross = scenario.problems()
    if cross:
        raise ScenarioError([_problem(filename, root, loc, msg) for loc, msg in cross])
    return scenario


def _problem(filename: str, root: yaml.Node | None, loc: tuple[Any, ...], msg: str) -> str:
    where = ".".join(str(p) for p in loc) or "scenario"
    return f"{filename}:{_line_of(root, loc)}: {where}: {msg}"


_UNION_TAGS = {"DeviceGroup", "list[DeviceSpec]", *FAULT_KINDS}


def _strip_union_tags(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    # pydantic names the union member it tried; those are not keys of the file.
    return tuple(p for p in loc if p not in _UNION_TAGS)


def _line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int:
    """1-based line of the deepest node of ``loc`` found in the composed tree."""
    line = node.start_mark.line + 1 if node is not None else 1
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if k.value == key:
                    node, line = v, k.start_mark.line + 1
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int):
            if key >= len(node.value):
                return line
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            return line
    return line
