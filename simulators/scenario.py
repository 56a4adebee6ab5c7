"""Scenarios: which simulated devices exist and how their metrics behave (YAML).

A scenario file, minimal today and meant to grow (the closed-loop issue adds
``actuators:``, ``physics:`` and ``faults:`` sections next to these)::

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

from simulators.model import MetricSpec, SensorModel

BUILTIN_PACKAGE = "simulators.scenarios"
DEFAULT_SCENARIO = "sensors"


class ScenarioError(Exception):
    """A scenario could not be loaded; ``problems`` lists every ``file:line: message``."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def _check_topic_level(value: str, kind: str = "device id") -> str:
    # Device ids and metric names become MQTT topic levels: wildcards,
    # separators or control characters would publish somewhere else (or nowhere).
    if not value:
        raise ValueError(f"{kind} is empty")
    bad = [c for c in value if c in "+#/" or c < " " or c == "\x7f"]
    if bad:
        raise ValueError(f"{kind} {value!r} contains {bad[0]!r}")
    return value


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
        return _check_topic_level(value)


class Scenario(BaseModel):
    """A validated scenario file (see the module docstring for the format)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    description: str = ""
    devices: DeviceGroup | list[DeviceSpec] = Field(
        default_factory=lambda: DeviceGroup.model_validate({})
    )
    metrics: dict[str, MetricSpec] = Field(min_length=1)

    @field_validator("metrics")
    @classmethod
    def _valid_metric_names(cls, metrics: dict[str, MetricSpec]) -> dict[str, MetricSpec]:
        for name in metrics:
            _check_topic_level(name, "metric name")
            if name == "ts":
                raise ValueError("'ts' is the timestamp field of JSON samples, not a metric")
        return metrics

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
                _check_topic_level(device)
            except ValueError as exc:
                raise ScenarioError([str(exc)]) from None
            unknown = [m for m in names or () if m not in self.metrics]
            if unknown:
                raise ScenarioError([f"device {device}: unknown metric {unknown[0]!r}"])
            out.append((device, list(names or self.metrics)))
        return out

    def build_models(
        self, seed: int | str | None, count: int | None = None, prefix: str | None = None
    ) -> list[SensorModel]:
        """One ``SensorModel`` per device, each with its own seeded generator."""
        return [
            SensorModel(device, {m: self.metrics[m] for m in names}, seed=seed)
            for device, names in self.device_plan(count, prefix)
        ]


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
        return Scenario.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = _strip_union_tags(err["loc"])
            line = _line_of(root, loc)
            where = ".".join(str(p) for p in loc) or "scenario"
            problems.append(f"{filename}:{line}: {where}: {err['msg']}")
        raise ScenarioError(problems) from None


_UNION_TAGS = {"DeviceGroup", "list[DeviceSpec]"}


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
