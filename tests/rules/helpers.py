"""Shared helpers for rules tests: a fake clock in seconds, readings, engines from YAML."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from rules import AlertEvent, CommandRequest, Engine, Output, Sample, load_rules

S = 1_000_000_000
MIN = 60 * S


def engine_for(yaml_text: str, **kwargs: Any) -> Engine:
    return Engine(load_rules([("rules.yaml", yaml_text)]), **kwargs)


def rule(body: str) -> str:
    """A one-rule file; ``body`` is the rule's keys, one per line, without indentation."""
    lines = "\n".join("    " + line for line in body.strip().splitlines())
    return "rules:\n  - name: r\n" + lines + "\n"


def reading(device: str, metric: str, value: Any, t: float, **tags: str) -> Sample:
    v = float(value) if isinstance(value, int) and not isinstance(value, bool) else value
    return Sample(device, metric, v, int(t * S), tags)


class Clock:
    """Drives an engine on fake time (seconds) and records every output with its time."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.outputs: list[Output] = []

    def feed(
        self, t: float, value: Any, device: str = "d1", metric: str = "m", **tags: str
    ) -> list[Output]:
        out = self.engine.observe(reading(device, metric, value, t, **tags), int(t * S))
        self.outputs.extend(out)
        return out

    def series(
        self,
        values: Sequence[Any],
        step: float = 10,
        start: float = 0,
        device: str = "d1",
        metric: str = "m",
    ) -> None:
        for i, v in enumerate(values):
            if v is not None:
                self.feed(start + i * step, v, device, metric)

    def tick(self, t: float) -> list[Output]:
        out = self.engine.tick(int(t * S))
        self.outputs.extend(out)
        return out

    def state(self, device: str = "d1", rule_name: str = "r") -> str:
        return self.engine.state_of(rule_name, device).state.value

    def events(self) -> list[tuple[float, str]]:
        return [(e.at / S, e.state.value) for e in self.outputs if isinstance(e, AlertEvent)]

    def commands(self) -> list[CommandRequest]:
        return [c for c in self.outputs if isinstance(c, CommandRequest)]


def states(outputs: Iterable[Output]) -> list[str]:
    return [o.state.value for o in outputs if isinstance(o, AlertEvent)]
