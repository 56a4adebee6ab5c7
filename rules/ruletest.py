"""Rule unit tests (``outpost rules test``), in the spirit of ``promtool test rules``:
running a test file's tests, each on a fresh engine, and reporting failures.

The test file format and its loader are in :mod:`rules.testfile`. Failures say
what was expected and what was got, with the ``file:line:col`` of the
expectation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rules.durations import format_duration
from rules.engine import Engine
from rules.events import AlertEvent, CommandRequest, Output
from rules.model import RuleSet
from rules.testfile import Expect, RuleTest, RuleTestFile, load_test_file, parse_series
from rules.yamlsrc import Mark

__all__ = [
    "Expect",
    "Failure",
    "RuleTest",
    "RuleTestFile",
    "TestReport",
    "load_test_file",
    "parse_series",
    "run_tests",
]


@dataclass(frozen=True, slots=True)
class Failure:
    test: str
    mark: Mark
    message: str

    def __str__(self) -> str:
        return f"{self.mark}: {self.test}: {self.message}"


@dataclass
class TestReport:
    tests: int = 0
    failures: list[Failure] = field(default_factory=list)


def run_tests(spec: RuleTestFile, ruleset: RuleSet) -> TestReport:
    """Run every test of ``spec`` on a fresh engine each; collect failures."""
    report = TestReport()
    for test in spec.tests:
        report.tests += 1
        report.failures.extend(_run_one(test, ruleset))
    return report


def _run_one(test: RuleTest, ruleset: RuleSet) -> list[Failure]:
    engine = Engine(ruleset)
    names = {r.name for r in ruleset.rules}
    failures: list[Failure] = []
    samples = list(test.samples)
    i = 0
    last_event: dict[tuple[str, str], AlertEvent] = {}
    for exp in test.expects:
        got: list[Output] = []
        while i < len(samples) and samples[i].ts <= exp.at:
            got.extend(engine.observe(samples[i], samples[i].ts))
            i += 1
        got.extend(engine.tick(exp.at))
        for o in got:
            if isinstance(o, AlertEvent):
                last_event[(o.rule, o.device)] = o
        when = f"at {format_duration(exp.at - test.start)}"
        for mark, a in exp.alerts:
            failures.extend(_check_alert(test.name, mark, when, a, names, engine, last_event))
        if exp.events is not None:
            want = [(e.get("rule"), e.get("device"), e.get("state")) for e in exp.events]
            have = [(o.rule, o.device, o.state.value) for o in got if isinstance(o, AlertEvent)]
            if want != have:
                failures.append(
                    Failure(
                        test.name,
                        exp.mark,
                        f"{when}: events\n  expected: {_fmt(want)}\n  got:      {_fmt(have)}",
                    )
                )
        if exp.commands is not None:
            cmds = [o for o in got if isinstance(o, CommandRequest)]
            want_c = [_want_command(c) for c in exp.commands]
            have_c = [
                {k: v for k, v in _have_command(o).items() if k in w}
                for o, w in zip(cmds, want_c, strict=False)
            ]
            if len(cmds) != len(want_c) or want_c != have_c:
                failures.append(
                    Failure(
                        test.name,
                        exp.mark,
                        f"{when}: commands\n  expected: {_fmt(want_c)}\n"
                        f"  got:      {_fmt([_have_command(o) for o in cmds])}",
                    )
                )
    return failures


def _check_alert(
    test: str,
    mark: Mark,
    when: str,
    a: dict[str, Any],
    names: set[str],
    engine: Engine,
    last: dict[tuple[str, str], AlertEvent],
) -> list[Failure]:
    rule, device = a["rule"], a["device"]
    if rule not in names:
        return [Failure(test, mark, f"{when}: unknown rule {rule!r}")]
    state = engine.state_of(rule, device).state.value
    allowed = a["state"] if isinstance(a["state"], list) else [a["state"]]
    out = []
    if state not in allowed:
        out.append(
            Failure(
                test,
                mark,
                f"{when}: alert {rule}/{device}: expected {' or '.join(allowed)}, got {state}",
            )
        )
    event = last.get((rule, device))
    for key in ("value", "message"):
        if key in a:
            have = getattr(event, key) if event else None
            want = float(a[key]) if key == "value" and isinstance(a[key], int) else a[key]
            if have != want:
                out.append(
                    Failure(
                        test,
                        mark,
                        f"{when}: alert {rule}/{device}: expected {key} {want!r}, got {have!r}",
                    )
                )
    return out


def _want_command(c: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {k: c[k] for k in ("rule", "device", "target") if k in c}
    out["set"] = dict(c.get("set") or {})
    return out


def _have_command(o: CommandRequest) -> dict[str, Any]:
    return {"rule": o.rule, "device": o.device, "target": o.target, "set": dict(o.settings)}


def _fmt(items: list[Any]) -> str:
    return "[]" if not items else "[" + ", ".join(str(i) for i in items) + "]"
