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

from gateway.yamlfiles import read_text
from rules import AlertEvent, CommandRequest, Engine, SourceError, load_rules, replay
from rules.durations import DurationError, parse_duration
from rules.events import rfc3339
from rules.replay import ReplayOrderError, Sample, sample_from_json
from rules.report import render_html
from rules.ruletest import load_test_file, run_tests

PROGRESS_MIN_READINGS = 20_000


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
    check.set_defaults(func=cmd_check)

    test = sub.add_parser(
        "test", parents=parents, help="run rule unit tests (series in, alerts expected)"
    )
    test.add_argument("files", nargs="+", metavar="FILE")
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
        help="show a progress bar even when stderr is not a terminal",
    )
    rep.set_defaults(func=cmd_replay)
    return rules


def _read(paths: Sequence[str], err: TextIO) -> list[tuple[str, str]] | None:
    sources: list[tuple[str, str]] = []
    ok = True
    for path in paths:
        try:
            sources.append((path, read_text(path)))
        except SourceError as exc:
            print(exc, file=err)
            ok = False
    return sources if ok else None


def cmd_check(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    sources = _read(args.files, err)
    if sources is None:
        return 1
    try:
        ruleset = load_rules(sources)
    except SourceError as exc:
        for problem in exc.problems:
            print(problem, file=err)
        print(f"{len(exc.problems)} error(s)", file=err)
        return 1
    print(f"{len(ruleset.rules)} rule(s) OK in {len(sources)} file(s)", file=out)
    return 0


def cmd_test(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    status = 0
    total = failed = 0
    for path in args.files:
        sources = _read([path], err)
        if sources is None:
            status = 1
            continue
        try:
            spec = load_test_file(sources[0][1], path)
        except SourceError as exc:
            for problem in exc.problems:
                print(problem, file=err)
            status = 1
            continue
        base = Path(path).parent
        rule_sources = _read([str(base / f) for f in spec.rule_files], err)
        if rule_sources is None:
            status = 1
            continue
        try:
            ruleset = load_rules(rule_sources)
        except SourceError as exc:
            for problem in exc.problems:
                print(problem, file=err)
            status = 1
            continue
        report = run_tests(spec, ruleset)
        total += report.tests
        failed_tests = {f.test for f in report.failures}
        failed += len(failed_tests)
        for failure in report.failures:
            print(f"FAIL {failure}", file=out)
        print(f"{path}: {report.tests - len(failed_tests)}/{report.tests} test(s) passed", file=out)
        if report.failures:
            status = 1
    if total:
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


def _load_samples(path: str, err: TextIO) -> list[Sample] | None:
    samples: list[Sample] = []
    bad = 0
    try:
        with open(path, encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    samples.append(sample_from_json(json.loads(line)))
                except (ValueError, TypeError, AttributeError) as exc:
                    bad += 1
                    if bad <= 20:
                        print(f"{path}:{n}: {exc}", file=err)
    except OSError as exc:
        print(f"{path}:1:1: cannot read: {exc}", file=err)
        return None
    if bad:
        print(f"{path}: {bad} bad line(s)", file=err)
        return None
    # Recordings from several publishers can be slightly out of order; a stable
    # sort keeps file order for equal timestamps (DESIGN §6).
    samples.sort(key=lambda s: s.ts)
    return samples


class _Progress:
    """A one-line bar on stderr, redrawn at most once per percent."""

    def __init__(self, total: int, err: TextIO, enabled: bool) -> None:
        self.total, self.err, self.enabled, self.shown = total, err, enabled, -1

    def update(self, done: int) -> None:
        if not self.enabled:
            return
        pct = done * 100 // max(self.total, 1)
        if pct != self.shown:
            self.shown = pct
            bar = "#" * (pct // 4) + "." * (25 - pct // 4)
            print(
                f"\rreplay [{bar}] {pct:3d}% {done}/{self.total}", end="", file=self.err, flush=True
            )

    def close(self) -> None:
        if self.enabled:
            print(file=self.err)


def cmd_replay(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    sources = _read(args.rules, err)
    if sources is None:
        return 1
    try:
        ruleset = load_rules(sources)
    except SourceError as exc:
        for problem in exc.problems:
            print(problem, file=err)
        return 1
    samples = _load_samples(args.input, err)
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
    show = args.progress or (err.isatty() and len(samples) >= PROGRESS_MIN_READINGS)
    progress = _Progress(len(samples), err, show)
    series: dict[tuple[str, str], list[tuple[int, float]]] = {}
    events: list[AlertEvent] = []

    def feed() -> Any:
        for i, s in enumerate(samples):
            if args.html and not isinstance(s.value, str):
                series.setdefault((s.device, s.metric), []).append((s.ts, float(s.value)))
            if i % 1000 == 0:
                progress.update(i)
            yield s
        progress.update(len(samples))

    try:
        for item in replay(engine, feed(), until):
            if isinstance(item, AlertEvent):
                events.append(item)
                if args.json:
                    print(item.to_json(), file=out)
                else:
                    print(_timeline_event(item), file=out)
            elif not args.json:
                print(_timeline_command(item), file=out)
    except ReplayOrderError as exc:
        progress.close()
        print(f"{args.input}: {exc}", file=err)
        return 1
    progress.close()
    counters = engine.counters()
    if not args.json:
        print(
            f"{len(samples)} reading(s), {len(events)} alert event(s), "
            f"{counters['evaluations']} evaluation(s), {counters['undefined']} undefined",
            file=out,
        )
    if args.html:
        page = render_html(series, events, ruleset.rules, title=f"Replay of {args.input}")
        Path(args.html).write_text(page, encoding="utf-8")
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
