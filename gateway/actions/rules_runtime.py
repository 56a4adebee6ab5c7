"""Live rules: readings in, alert events and device commands out (DESIGN.md §6).

The engine (``rules/``) is pure; this module gives it a clock, a journal and
a voice. Every reading is observed on the event loop at its arrival time; a
tick task advances time-based transitions (``for``, ``keep_firing_for``,
``repeat``, ``absent``) at their deadlines, at most ``TICK_MAX`` late. Alert
events go to the :class:`~gateway.actions.alerts.AlertBus` (MQTT, journal,
InfluxDB, notifiers); command requests go to the
:class:`~gateway.actions.dispatcher.CommandDispatcher` (checks, acks, retries).

Rule files are re-read when they change (polled) or on SIGHUP: a valid new
set replaces the old one and rules whose definition did not change keep their
state; a set that cannot be loaded is refused with every error and the old rules
keep running. "Cannot be loaded" includes a folder of the ``rules:`` globs that
cannot be listed (out of file descriptors, replaced by a file) and a file that
cannot be read: neither may pass for "no rule files", which would unload every
rule. Each reload, applied or refused, is logged and journaled
(``rules_reload``). Files are read and compiled on a worker thread, so even a
large rule set does not hold up the event loop. At start the alert state is
rebuilt from the journal, so a restart neither re-announces a firing alert nor
forgets a pending one.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from devices.model import Reading
from gateway.actions.alerts import AlertBus
from gateway.actions.commands import Origin
from gateway.actions.dispatcher import CommandDispatcher
from gateway.journal import Journal
from gateway.metrics import Family, Metrics, Sample
from gateway.yamlfiles import read_text
from rules import (
    AlertEvent,
    CommandRequest,
    Engine,
    Mark,
    Problem,
    Rule,
    RuleSet,
    SourceError,
    StoredAlert,
    load_rules,
)

log = logging.getLogger("outpost.rules")

FAMILIES = (
    Family("outpost_alerts", "Alerts by state (pending, firing)", ("state",)),
    Family("outpost_rules_loaded", "Rules loaded"),
    Family(
        "outpost_rule_undefined_evaluations",
        "Evaluations whose expression met an undefined value "
        "(missing/stale metric, empty window…), since start",
    ),
    Family("outpost_rule_window_points", "Points held in rule windows"),
)

TICK_MAX = 0.25  # seconds: the latest a time-based transition happens live
RELOAD_POLL = 2.0  # seconds between checks of the rule files' modification times
CHECKPOINT_EVERY = 60.0
JOURNALED_ERRORS = 20  # a refused reload journals its first errors; the log has them all


def rule_files(patterns: list[str]) -> list[Path]:
    """Files matching the config's ``rules:`` globs, in a stable order.

    Raises OSError when a folder cannot be listed (see :func:`_glob`).
    """
    found: dict[str, Path] = {}
    for pattern in patterns:
        for name in sorted(_glob(pattern)):
            found.setdefault(os.path.abspath(name), Path(name))
    return list(found.values())


_MAGIC = re.compile(r"[*?[]")


def _glob(pattern: str) -> list[str]:
    """What :func:`glob.glob` finds, except that a folder it cannot list is an error.

    ``glob.glob`` answers "no files" to every error (out of file descriptors,
    a folder replaced by a file, an I/O error); for rule files that would unload
    every rule. Only a folder that does not exist is "no files" here. As with
    ``glob.glob``, a wildcard does not match a name starting with a dot.
    """
    if not _MAGIC.search(pattern):
        return [pattern] if os.path.lexists(pattern) else []
    head, tail = os.path.split(pattern)
    folders = [d for d in _glob(head) if os.path.isdir(d)] if _MAGIC.search(head) else [head]
    if not _MAGIC.search(tail):
        return [path for d in folders if os.path.lexists(path := os.path.join(d, tail))]
    return [
        os.path.join(folder, name)
        for folder in folders
        for name in _names(folder)
        if fnmatch.fnmatchcase(name, tail) and (tail.startswith(".") or not name.startswith("."))
    ]


def _names(folder: str) -> list[str]:
    try:
        with os.scandir(folder or os.curdir) as entries:
            return [entry.name for entry in entries]
    except FileNotFoundError:
        return []


def load_rule_files(patterns: list[str]) -> tuple[RuleSet, list[Path]]:
    """Read and validate every rule file; raises SourceError with every problem."""
    try:
        files = rule_files(patterns)
    except OSError as exc:
        where = exc.filename or ", ".join(patterns)
        raise SourceError(
            [Problem(Mark(str(where), 1, 1), f"cannot list rule files: {exc.strerror}")]
        ) from None
    sources, problems = [], []
    for path in files:
        try:
            sources.append((str(path), read_text(path)))
        except SourceError as exc:
            problems.extend(exc.problems)
    try:
        ruleset = load_rules(sources)
    except SourceError as exc:
        raise SourceError(problems + exc.problems) from None
    if problems:
        raise SourceError(problems)
    return ruleset, files


class RulesRuntime:
    def __init__(
        self,
        patterns: list[str],
        *,
        journal: Journal,
        bus: AlertBus,
        dispatcher: CommandDispatcher,
        metrics: Metrics,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self._patterns = patterns
        self._journal = journal
        self._bus = bus
        self._dispatcher = dispatcher
        self._metrics = metrics
        self._clock = clock
        ruleset, self._files = load_rule_files(patterns)
        # Problems of the rule files on disk when they last changed into something
        # invalid (the running rules are then still the last valid set); [] when valid.
        self.errors: list[str] = []
        self._mtimes = self._stat()
        self.engine = Engine(ruleset)
        self._index_rules(ruleset)
        restored = self.engine.restore(journal.alerts(), journal.series())
        self._wake = asyncio.Event()
        self._reload_asked = False
        self._reloading = asyncio.Lock()
        self._observed = 0
        self._timed = metrics.rule_eval_seconds
        self._inhibited: set[tuple[str, str]] = set()
        log.info(
            "%d rules from %d files; %d alerts restored from the journal",
            len(ruleset.rules),
            len(self._files),
            restored,
        )

    def _index_rules(self, ruleset: RuleSet) -> None:
        self._fingerprints = {r.name: r.fingerprint for r in ruleset.rules}
        self._absent_window = {
            r.name: max(r.when.absent + (r.clear.absent if r.clear else ()))
            for r in ruleset.rules
            if r.is_absence
        }

    @property
    def files(self) -> list[str]:
        return [str(path) for path in self._files]

    @property
    def rule_count(self) -> int:
        return len(self._fingerprints)

    # event loop: one call per reading ------------------------------------------

    def observe(self, reading: Reading) -> None:
        self._observed += 1
        if self._observed & 63:
            outputs = self.engine.observe(reading, self._clock())
        else:  # time one reading in 64: timing each would cost more than evaluating
            started = time.perf_counter()
            outputs = self.engine.observe(reading, self._clock())
            self._timed.observe(time.perf_counter() - started)
        if outputs:
            self._handle(outputs)
            self._wake.set()  # a new deadline may be earlier than the tick task's sleep

    def _handle(self, outputs: list[AlertEvent | CommandRequest]) -> None:
        for out in outputs:
            if isinstance(out, AlertEvent):
                self._alert(out)
            else:
                self._command(out)

    def _alert(self, event: AlertEvent) -> None:
        payload = event.to_dict()
        record = self.engine.state_of(event.rule, event.device)
        stored = StoredAlert(
            event.rule, self._fingerprints.get(event.rule, ""), event.device, record
        )
        key = (event.rule, event.device)
        inhibited = self._bus.inhibited(payload, event.at, self._absent_window.get(event.rule))
        if inhibited:
            self._inhibited.add(key)
        quiet = inhibited or key in self._inhibited
        if event.state.value in ("resolved", "inactive"):
            self._inhibited.discard(key)
        self._bus.emit(payload, event.at, state=stored.to_dict(), notify=not quiet)

    def _command(self, request: CommandRequest) -> None:
        if (request.rule, request.device) in self._inhibited:
            return  # the alert behind it is inhibited: do not act on what we could not hear
        self._dispatcher.submit(
            request.target,
            request.settings,
            Origin("rule", request.rule, request.trace_id, request.device),
        )

    # background: ticks, reloads, checkpoints ------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        next_reload = next_checkpoint = loop.time()
        next_reload += RELOAD_POLL
        next_checkpoint += CHECKPOINT_EVERY
        while not stop.is_set():
            now_ns = self._clock()
            due = self.engine.next_deadline()
            if due is not None and due <= now_ns:
                outputs = self.engine.tick(now_ns)
                if outputs:
                    self._handle(outputs)
                continue
            sleep = TICK_MAX if due is None else min(TICK_MAX, (due - now_ns) / 1e9)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.001, sleep))
            if self._reload_asked or loop.time() >= next_reload:
                next_reload = loop.time() + RELOAD_POLL
                if self._reload_asked or self._stat() != self._mtimes:
                    self._reload_asked = False
                    await self.reload()
            if loop.time() >= next_checkpoint:
                next_checkpoint = loop.time() + CHECKPOINT_EVERY
                self.checkpoint()

    def _stat(self) -> dict[str, float] | str:
        """The rule files' modification times, or why their folders cannot be listed.

        A folder that stays unlistable gives the same answer poll after poll, so
        its refused reload is logged and journaled once, not every poll.
        """
        try:
            files = rule_files(self._patterns)
        except OSError as exc:
            return f"cannot list: {exc}"
        mtimes = {}
        for path in files:
            try:
                mtimes[str(path)] = path.stat().st_mtime
            except OSError:
                continue
        return mtimes

    def ask_reload(self) -> None:
        """SIGHUP: reload soon, from the rules task (the signal handler cannot wait)."""
        self._reload_asked = True
        self._wake.set()

    async def reload(self) -> bool:
        """Re-read the rule files; keep the running rules unless the new ones all load.

        Reading and compiling happen on a worker thread; the swap happens here, on
        the event loop, between two readings. One reload at a time.
        """
        async with self._reloading:
            self._mtimes = self._stat()
            try:
                ruleset, files = await asyncio.to_thread(load_rule_files, self._patterns)
            except SourceError as exc:
                self._refuse([str(problem) for problem in exc.problems])
                return False
            except Exception as exc:  # a loader bug must not take the running rules with it
                log.exception("loading the rule files failed")
                self._refuse([f"loading the rule files failed: {type(exc).__name__}: {exc}"])
                return False
            refused_commands = self._dispatcher.rule_problems(ruleset)
            if refused_commands:  # held to devices: as at start (gateway/preflight.py)
                self._refuse([str(problem) for problem in SourceError(refused_commands).problems])
                return False
            self._apply(ruleset, files)
            return True

    def _refuse(self, errors: list[str]) -> None:
        self.errors = errors
        self._metrics.rule_reloads.labels("refused").inc()
        log.error(
            "rule files changed but are invalid; the previous %d rules keep running:\n%s",
            self.rule_count,
            "\n".join(errors),
        )
        self._journal.append(
            "rules_reload",
            {
                "outcome": "refused",
                "running": self.rule_count,
                "errors": errors[:JOURNALED_ERRORS],
                "more_errors": max(0, len(errors) - JOURNALED_ERRORS),
            },
        )

    def _apply(self, ruleset: RuleSet, files: list[Path]) -> None:
        result = self.engine.reload(ruleset)
        self._files = files
        self.errors = []
        self._index_rules(ruleset)
        self._metrics.rule_reloads.labels("applied").inc()
        log.info(
            "rules reloaded: %d kept, %d changed, %d added, %d removed (%d alerts dropped)",
            len(result.kept),
            len(result.changed),
            len(result.added),
            len(result.removed),
            result.dropped_alerts,
        )
        self._journal.append(
            "rules_reload",
            {
                "outcome": "applied",
                "running": self.rule_count,
                "kept": len(result.kept),
                "changed": len(result.changed),
                "added": len(result.added),
                "removed": len(result.removed),
                "alerts_dropped": result.dropped_alerts,
            },
        )
        self._wake.set()

    def checkpoint(self) -> None:
        self._journal.checkpoint(self.engine.alerts(), self.engine.export_series())

    def counters(self) -> dict[str, int]:
        return self.engine.counters()

    families = FAMILIES

    def samples(self) -> Iterator[Sample]:
        counters = self.engine.counters()
        yield "outpost_alerts", ("pending",), float(counters.get("alerts_pending", 0))
        yield "outpost_alerts", ("firing",), float(counters.get("alerts_firing", 0))
        yield "outpost_rules_loaded", (), float(counters.get("rules", 0))
        yield "outpost_rule_undefined_evaluations", (), float(counters.get("undefined", 0))
        yield "outpost_rule_window_points", (), float(counters.get("window_points", 0))

    def alerts(self) -> list[StoredAlert]:
        """Every alert the engine holds (pending, firing, and resolved ones it remembers)."""
        return self.engine.alerts()

    def definitions(self) -> list[Rule]:
        """The running rules, in file order."""
        return list(self.engine.ruleset.rules)

    def rule_counters(self) -> dict[str, dict[str, int]]:
        return self.engine.rule_counters()
