"""``outpost rules check | test | replay``: the file-reading side of the rules engine.

``rules/`` does no I/O; this module reads files, calls the library and turns
results into output and exit codes (0 ok, 1 any error or failing expectation,
2 usage). ``gateway.cli`` mounts it with :func:`add_parser`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from gateway.cli.common import add_json_flag, print_json, problem_json, report
from gateway.cli.progress import Progress
from gateway.yamlfiles import read_text
from rules import (
    AlertEvent,
    CommandRequest,
    Engine,
    Problem,
    RuleSet,
    SourceError,
    load_rules,
    replay,
)
from rules.durations import DurationError, parse_duration
from rules.events import rfc3339
from rules.replay import ReplayOrderError, Sample, sample_from_json
from rules.report import render_html
from rules.ruletest import Failure, TestReport, load_test_file, run_tests


def add_parser(
    subparsers: Any, common: argparse.ArgumentParser | None = None
) -> argparse.ArgumentParser:
    """Add the ``rules`` verb with ``check``, ``test`` and ``replay`` (each sets ``func``)."""
    parents = [common] if common is not None else []
    rules: argparse.ArgumentParser = subparsers.add_parser(
        "rules", parents=parents, help="check, test and replay rule files"
    )
    sub = rules.add_subparsers(dest="rules_command", required=True)

    check = sub.add_parser("check", parents=parents, help="validate rule files; print every error")
    check.add_argument("files", nargs="+", metavar="FILE")
    add_json_flag(check, "the result and every error")
    check.set_defaults(func=cmd_check)

    test = sub.add_parser(
        "test", parents=parents, help="run rule unit tests (series in, alerts expected)"
    )
    test.add_argument("files", nargs="+", metavar="FILE")
    add_json_flag(test, "every test file's result and failures")
    test.set_defaults(func=cmd_test)

    rep = sub.add_parser(
        "replay", parents=parents, help="backtest rules over recorded readings (JSONL)"
    )
    rep.add_argument("--rules", nargs="+", required=True, metavar="FILE")
    rep.add_argument("--input", required=True, metavar="FILE.jsonl")
    rep.add_argument(
        "--until",
        metavar="T",
        help="tick on to T: ns since epoch, RFC 3339, or +DURATION after the last reading",
    )
    rep.add_argument("--json", action="store_true", help="print alert events as JSON lines")
    rep.add_argument("--html", metavar="OUT", help="write a self-contained chart page")
    rep.add_argument(
        "--progress",
        action="store_true",
        help="print progress lines even when stderr is not a terminal",
    )
    rep.set_defaults(func=cmd_replay)
    return rules


def _read(paths: Sequence[str]) -> tuple[list[tuple[str, str]], list[Problem]]:
    """The files' text, and a problem for each that cannot be read."""
    sources: list[tuple[str, str]] = []
    problems = []
    for path in paths:
        try:
            sources.append((path, read_text(path)))
        except SourceError as exc:
            problems.extend(exc.problems)
    return sources, problems


def _load(paths: Sequence[str]) -> tuple[RuleSet | None, list[Problem]]:
    """The rule set of ``paths``, or None and every problem found."""
    sources, problems = _read(paths)
    try:
        ruleset = load_rules(sources)
    except SourceError as exc:
        return None, problems + exc.problems
    return (None, problems) if problems else (ruleset, [])


def cmd_check(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    ruleset, problems = _load(args.files)
    if getattr(args, "json", False):
        rules = len(ruleset.rules) if ruleset else 0
        print_json(
            {
                "ok": not problems,
                "rules": rules,
                "files": list(args.files),
                "errors": [problem_json(p) for p in problems],
            },
            out,
        )
        return 1 if problems else 0
    if ruleset is None:
        report(problems, err)
        print(f"{len(problems)} error(s)", file=err)
        return 1
    print(f"{len(ruleset.rules)} rule(s) OK in {len(args.files)} file(s)", file=out)
    return 0


def _test_file(path: str) -> tuple[TestReport | None, list[Problem]]:
    """The report of one rule test file, or None and the problems that stopped it."""
    sources, problems = _read([path])
    if problems:
        return None, problems
    try:
        spec = load_test_file(sources[0][1], path)
    except SourceError as exc:
        return None, exc.problems
    base = Path(path).parent
    ruleset, problems = _load([str(base / f) for f in spec.rule_files])
    if ruleset is None:
        return None, problems
    return run_tests(spec, ruleset), []


def _failure_json(failure: Failure) -> dict[str, Any]:
    return {"test": failure.test, **problem_json(Problem(failure.mark, failure.message))}


def cmd_test(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    status = 0
    total = failed = 0
    results = []
    for path in args.files:
        result, problems = _test_file(path)
        if result is None:
            status = 1
            results.append({"file": path, "errors": [problem_json(p) for p in problems]})
            if not getattr(args, "json", False):
                report(problems, err)
            continue
        total += result.tests
        failed_tests = {f.test for f in result.failures}
        failed += len(failed_tests)
        if result.failures:
            status = 1
        results.append(
            {
                "file": path,
                "tests": result.tests,
                "passed": result.tests - len(failed_tests),
                "failures": [_failure_json(f) for f in result.failures],
            }
        )
        if getattr(args, "json", False):
            continue
        for failure in result.failures:
            print(f"FAIL {failure}", file=out)
        print(f"{path}: {result.tests - len(failed_tests)}/{result.tests} test(s) passed", file=out)
    if getattr(args, "json", False):
        print_json(
            {"ok": status == 0, "passed": total - failed, "failed": failed, "files": results}, out
        )
    elif total:
        print(f"{total - failed} passed, {failed} failed", file=out)
    return status


def _parse_until(text: str, last: int | None) -> int:
    if text.startswith("+"):
        return (last or 0) + parse_duration(text[1:])
    if text.isdigit():
        return int(text)
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if when.tzinfo is None:
        raise ValueError("--until needs a time zone (e.g. 2026-11-27T10:00:00Z)")
    return int(when.timestamp()) * 10**9 + when.microsecond * 1000


def _load_samples(path: str, err: TextIO, progress: Progress) -> list[Sample] | None:
    samples: list[Sample] = []
    bad = 0
    try:
        with open(path, encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if n % 1000 == 0:
                    progress.update(n)
                if not line.strip():
                    continue
                try:
                    samples.append(sample_from_json(json.loads(line)))
                except (ValueError, TypeError, AttributeError) as exc:
                    bad += 1
                    if bad <= 20:
                        progress.clear()
                        print(f"{path}:{n}: {exc}", file=err)
    except OSError as exc:
        print(f"{path}:1:1: cannot read: {exc.strerror}", file=err)
        return None
    finally:
        progress.clear()
    if bad:
        print(f"{path}: {bad} bad line(s)", file=err)
        return None
    # Recordings from several publishers can be slightly out of order; a stable
    # sort keeps file order for equal timestamps (DESIGN §6).
    samples.sort(key=lambda s: s.ts)
    return samples


def cmd_replay(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    ruleset, problems = _load(args.rules)
    if ruleset is None:
        report(problems, err)
        return 1
    live = err.isatty()
    reading = Progress(
        f"reading {args.input}:", "read", "lines", err, live=live, each_line=args.progress
    )
    samples = _load_samples(args.input, err, reading)
    if samples is None:
        return 1
    try:
        until = (
            _parse_until(args.until, samples[-1].ts if samples else None) if args.until else None
        )
    except (ValueError, DurationError) as exc:
        print(f"--until: {exc}", file=err)
        return 2
    engine = Engine(ruleset)
    progress = Progress(
        "replaying", "replayed", "readings", err,
        live=live, each_line=args.progress, total=len(samples),
    )  # fmt: skip
    series: dict[tuple[str, str], list[tuple[int, float]]] = {}
    events: list[AlertEvent] = []
    fed = 0

    def feed() -> Any:
        nonlocal fed
        for s in samples:
            if args.html and not isinstance(s.value, str):
                series.setdefault((s.device, s.metric), []).append((s.ts, float(s.value)))
            fed += 1
            if fed % 1000 == 0:
                progress.update(fed)
            yield s

    def show(line: str) -> None:
        progress.clear()  # stdout and stderr are often the same terminal
        print(line, file=out)

    try:
        for item in replay(engine, feed(), until):
            if isinstance(item, AlertEvent):
                events.append(item)
                show(item.to_json() if args.json else _timeline_event(item))
            elif not args.json:
                show(_timeline_command(item))
    except ReplayOrderError as exc:
        progress.clear()
        print(f"{args.input}: {exc}", file=err)
        return 1
    progress.finish(fed, f", {len(events):,} alert events")
    counters = engine.counters()
    if not args.json:
        print(
            f"{len(samples)} reading(s), {len(events)} alert event(s), "
            f"{counters['evaluations']} evaluation(s), {counters['undefined']} undefined",
            file=out,
        )
    if args.html:
        page = render_html(series, events, ruleset.rules, title=f"Replay of {args.input}")
        try:
            Path(args.html).write_text(page, encoding="utf-8")
        except OSError as exc:
            print(f"--html {args.html}: cannot write: {exc.strerror}", file=err)
            return 2
        print(f"wrote {args.html}", file=err)
    return 0


def _timeline_event(ev: AlertEvent) -> str:
    value = "" if ev.value is None else f" value={ev.value}"
    again = " (repeat)" if ev.repeat else ""
    return (
        f"{rfc3339(ev.at)}  {ev.state.value.upper():8} {ev.rule} {ev.device}{value}"
        f"{again}  {ev.message}"
    )


def _timeline_command(cmd: CommandRequest) -> str:
    settings = " ".join(f"{k}={v}" for k, v in cmd.settings.items())
    return (
        f"{rfc3339(cmd.at)}  COMMAND  {cmd.target} {settings}  "
        f"({cmd.rule} {cmd.device} {cmd.trigger.value})"
    )
