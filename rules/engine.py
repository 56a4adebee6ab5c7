"""The rules engine: readings and ticks in, alert events and command requests out.

Lifecycle (the gateway's side)::

    engine = Engine(load_rules(sources))
    engine.restore(alerts, series)            # optional: from the journal
    out = engine.observe(reading, now)        # for every reading, now = arrival ns
    out = engine.tick(now)                    # whenever now >= engine.next_deadline()
    engine.export_alerts()/export_series()    # for the journal
    engine.reload(load_rules(new_sources))    # hot reload, unchanged rules keep state

Everything is synchronous and deterministic: time is the ``now`` argument, never
read from a clock, so replay, tests and live use run the same code. ``now`` never
goes backwards inside the engine (an earlier ``now`` is treated as the latest
one seen), because windows and deadlines assume a monotonic clock.

Time-based work (``for``/``keep_firing_for``/``repeat`` and ``absent(D)``
deadlines, see :mod:`rules.deadlines`): :meth:`tick` processes all of it up to
``now`` in time order, each *at its own deadline*, and :meth:`observe` ticks
first, so transitions due at or before a reading happen before it is evaluated.

Memory: one small ``Series`` per (device, metric) seen (latest value, tags, its
bounded point store shared by its windows, and its cached list of candidate
rules) and one record per (rule, device) alert that is not inactive. The number
of series is bounded by what the gateway admits (its configured inputs and
devices), not by the engine; the match cache is bounded. ``window_points``
counts each stored point once, however many spans read it.

Speed: ``observe`` is the hot path (every reading). A series caches its
candidate rules (a :class:`_Plan`); when all are plain and the device has no
alert — the usual case — only the ``when`` closures run, with no per-rule
bookkeeping (evaluations are counted per plan and handed to the rules when
counters are read).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from typing import Any

from rules.carryover import (
    carry_over,
    counters,
    restore_alerts,
    rule_counters,
    stored_alerts,
    stored_series,
)
from rules.context import _MISSING, Context, Undefined
from rules.deadlines import _Deadlines
from rules.events import Output
from rules.matching import Entry, RuleIndex
from rules.model import ReadingLike, RuleSet, Value
from rules.outputs import emit
from rules.runtime import _AbsentWatch, _Plan, _RuleRuntime, window_spans
from rules.snapshot import ReloadResult, StoredAlert, StoredSeries
from rules.state import INITIAL, AlertRecord, AlertState, Transition, advance, deadline, evaluate
from rules.windows import DEFAULT_MAX_POINTS, Series

__all__ = ["Engine", "ReloadResult", "StoredAlert", "StoredSeries"]

_F = AlertState.FIRING
_P = AlertState.PENDING


class Engine(_Deadlines):
    """Evaluates a :class:`RuleSet` over readings; see the module docstring for the lifecycle.

    ``max_window_points`` bounds the points kept per series, so every window
    (oldest points dropped and counted once, in ``window_points_dropped``).
    """

    def __init__(
        self,
        ruleset: RuleSet,
        *,
        max_window_points: int = DEFAULT_MAX_POINTS,
        max_match_cache: int = 200_000,
    ) -> None:
        self._max_points = max_window_points
        self._max_cache = max_match_cache
        self._devices: dict[str, dict[str, Series]] = {}
        self._now = 0
        self._seq = 0
        self._ctx = Context()
        self._heap: list[tuple[int, int, str, int]] = []
        self._pushes = 0
        self._dropped_retired = 0
        self._plans: dict[tuple[Entry[_RuleRuntime], ...], _Plan] = {}
        self._install(ruleset, [_RuleRuntime(r, i) for i, r in enumerate(ruleset.rules)])

    # ----------------------------------------------------------------- set-up

    def _install(self, ruleset: RuleSet, runtimes: list[_RuleRuntime]) -> None:
        self._count_plans()
        self._plans = {}
        self.ruleset = ruleset
        self._rts = runtimes
        self._index: RuleIndex[_RuleRuntime] = RuleIndex(
            ((rt, rt.rule.match) for rt in runtimes), self._max_cache
        )
        self._spans, self._any_spans, watches = window_spans(runtimes)
        self._set_watches(watches)
        all_series = sorted(
            (s for ms in self._devices.values() for s in ms.values()), key=lambda s: s.ts
        )
        for s in all_series:
            before = s.dropped
            s.set_spans(self._spans_for(s.metric), self._max_points)
            self._dropped_retired += before - s.dropped
            s.plan = None
            self._arm(s, s.ts)
        self._heap = []
        self._active: dict[str, int] = {}  # device → how many alerts it has (not inactive)
        for rt in runtimes:
            for device, rec in rt.records.items():
                self._active[device] = self._active.get(device, 0) + 1
                self._schedule(rt, device, rec, None)

    def _spans_for(self, metric: str) -> set[int]:
        spans = self._spans.get(metric)
        return (spans | self._any_spans) if spans else self._any_spans

    def _series(self, device: str, metric: str) -> tuple[dict[str, Series], Series]:
        metrics = self._devices.get(device)
        if metrics is None:
            metrics = self._devices[device] = {}
        s = metrics.get(metric)
        if s is None:
            s = metrics[metric] = Series(device, metric)
            spans = self._spans_for(metric)
            if spans:
                s.set_spans(spans, self._max_points)
        return metrics, s

    # --------------------------------------------------------------- readings

    def observe(self, reading: ReadingLike, now: int) -> list[Output]:
        """Take one reading at time ``now`` (ns); return the events and commands it caused.

        Due time-based transitions are processed first (at their deadlines).
        Windows, ``absent`` and staleness use ``now`` as the reading's time
        (live: arrival time; replay: the reading's own ``ts``).
        """
        out: list[Output] = []
        if now < self._now:
            now = self._now
        elif (self._heap and self._heap[0][0] <= now) or (self._watches and self._due_by(now)):
            out = self.tick(now)
        self._now = now
        device, metric, value = reading.device, reading.metric, reading.value
        tags = reading.tags
        r: Any = reading  # topic and trace_id are optional (see ReadingLike)
        try:
            topic: str = r.topic
            trace_id: str = r.trace_id
        except AttributeError:
            topic = getattr(reading, "topic", "")
            trace_id = getattr(reading, "trace_id", "")
        metrics = self._devices.get(device)
        s = metrics.get(metric) if metrics is not None else None
        if metrics is None or s is None:
            metrics, s = self._series(device, metric)
        # Series.record, inlined: this runs for every reading.
        s.value = value
        s.ts = now
        store = s.store
        if store is not None:
            if type(value) is float:
                store.add(now, value)
            elif not isinstance(value, str):
                store.add(now, float(value))
        s.tags = tags
        s.topic = topic
        s.trace_id = trace_id
        if self._watches:
            self._arm(s, now)
        plan: _Plan | None = s.plan
        if plan is None:
            plan = s.plan = self._plan(metric, device)
        if not plan.rts:
            return out
        c = self._ctx
        c.value, c.device, c.tags, c.now, c.series, c.metrics = value, device, tags, now, s, metrics
        if plan.plain and device not in self._active:
            # The common case: every candidate rule is a plain one (no tags/topic
            # filter, no absent()) and the device has no alert at all, so only
            # `when` matters. A rule that fires here adds a record for itself
            # only, so the rest of the loop stays valid. Evaluations are counted
            # once per plan (see _Plan).
            plan.hits += 1
            for when, rt in plan.pairs:
                try:
                    if when(c) is not True:
                        continue
                except Undefined:
                    rt.undefined += 1
                    continue
                new, transitions = evaluate(
                    INITIAL, rt.rule.timing, now, True, None, value, trace_id
                )
                self._commit(rt, device, INITIAL, new, transitions, value, tags, metric, out)
            return out
        for e in plan.entries:
            if e.filtered and not e.accepts(tags, topic):
                continue
            rt = e.item
            if device in rt.records or rt.absence:
                self._evaluate(rt, c, value, trace_id, metric, out)
                continue
            # Fast path, by far the most common: no alert yet, so only `when` matters.
            rt.evaluations += 1
            try:
                if rt.when(c) is not True:
                    continue
            except Undefined:
                rt.undefined += 1
                continue
            new, transitions = evaluate(INITIAL, rt.rule.timing, now, True, None, value, trace_id)
            self._commit(rt, device, INITIAL, new, transitions, value, tags, metric, out)
        return out

    def _plan(self, metric: str, device: str) -> _Plan:
        """The rules a (device, metric) series can match, cached on the series."""
        entries = self._index.candidates(metric, device)
        plan = self._plans.get(entries)  # series matching the same rules share one
        if plan is None:
            plain = not any(e.filtered or e.item.absence for e in entries)
            plan = self._plans[entries] = _Plan(entries, plain)
        return plan

    def _count_plans(self) -> None:
        """Move the evaluations counted per plan to their rules."""
        for plan in self._plans.values():
            if plan.hits:
                for rt in plan.rts:
                    rt.evaluations += plan.hits
                plan.hits = 0

    def _evaluate(
        self,
        rt: _RuleRuntime,
        c: Context,
        value: Value | None,
        trace_id: str,
        metric: str,
        out: list[Output],
    ) -> None:
        device = c.device
        rec = rt.records.get(device)
        firing = rec is not None and rec.state is _F
        rt.evaluations += 1
        result: bool | None
        try:
            if firing and rt.clear is not None:
                result = rt.clear(c)
            else:
                result = rt.when(c)
                if firing:
                    result = not result
        except Undefined:
            result = None
            rt.undefined += 1
        if rec is None:
            if result is not True:
                return
            rec = INITIAL
        elif firing:
            if result is not True and rec.clear_since is None:
                return
        elif result is None or (result is True) == (rec.state is _P):
            return
        when = None if firing else result
        clear = result if firing else None
        if rt.absence:
            value = None
        new, transitions = evaluate(rec, rt.rule.timing, c.now, when, clear, value, trace_id)
        self._commit(rt, device, rec, new, transitions, value, c.tags, metric, out)

    def _commit(
        self,
        rt: _RuleRuntime,
        device: str,
        old: AlertRecord,
        new: AlertRecord,
        transitions: list[Transition],
        value: Value | None,
        tags: Mapping[str, str],
        metric: str,
        out: list[Output],
    ) -> None:
        if new.state is AlertState.INACTIVE:
            if rt.records.pop(device, None) is not None:
                left = self._active[device] - 1
                if left:
                    self._active[device] = left
                else:
                    del self._active[device]
        else:
            if device not in rt.records:
                self._active[device] = self._active.get(device, 0) + 1
            rt.records[device] = new
        self._schedule(rt, device, new, deadline(old, rt.rule.timing))
        emit(rt.rule, device, new, transitions, value, tags, metric, out)

    # ------------------------------------------------------------------ ticks

    def tick(self, now: int) -> list[Output]:
        """Process every time-based transition due at or before ``now``, in time order."""
        out: list[Output] = []
        while True:
            heap = self._heap
            while heap and not self._valid(heap[0]):
                heapq.heappop(heap)
            best_watch: _AbsentWatch | None = None
            best = heap[0][0] if heap else None
            for w in self._watches:
                due = w.due()
                if due is not None and (best is None or due < best):
                    best, best_watch = due, w
            if best is None or best > now:
                break
            if best_watch is None:
                due, index, device, _ = heapq.heappop(heap)
                self._advance(self._rts[index], device, due, out)
            else:
                (device, metric), _seen = best_watch.armed.popitem(last=False)
                self._absence(best_watch, device, metric, best, out)
        if now > self._now:
            self._now = now
        return out

    def _advance(self, rt: _RuleRuntime, device: str, at: int, out: list[Output]) -> None:
        rec = rt.records[device]
        new, transitions = advance(rec, rt.rule.timing, at)
        metric = rt.rule.match.metric or ""
        s = self._devices.get(device, {}).get(metric) if metric else None
        value: Value | None = None
        if not rt.rule.is_absence:
            value = s.value if s is not None else rec.value
        tags = s.tags if s is not None else {}
        self._commit(rt, device, rec, new, transitions, value, tags, metric, out)

    def _absence(
        self, watch: _AbsentWatch, device: str, metric: str, at: int, out: list[Output]
    ) -> None:
        metrics = self._devices.get(device)
        s = metrics.get(metric) if metrics else None
        if metrics is None or s is None:
            return
        c = self._ctx
        c.value, c.device, c.tags, c.now = _MISSING, device, s.tags, at
        c.series, c.metrics = s, metrics
        for rt in watch.runtimes:
            if rt.accepts(s):
                self._evaluate(rt, c, None, s.trace_id, metric, out)

    # ---------------------------------------------------------- state, reload

    def alerts(self) -> list[StoredAlert]:
        """Every alert not inactive (pending, firing, resolved), in rule order."""
        return stored_alerts(self._rts)

    export_alerts = alerts

    def state_of(self, rule: str, device: str) -> AlertRecord:
        """The record of one alert (inactive if the engine has none)."""
        for rt in self._rts:
            if rt.rule.name == rule:
                return rt.records.get(device, INITIAL)
        raise KeyError(rule)

    def export_series(self) -> list[StoredSeries]:
        return stored_series(self._devices)

    def restore(
        self, alerts: Iterable[StoredAlert] = (), series: Iterable[StoredSeries] = ()
    ) -> int:
        """Load journal state; alerts of rules whose fingerprint changed are skipped.

        Returns how many alerts were restored. Overdue deadlines (a ``for`` that
        ran out while the gateway was down) fire on the next tick, at their
        deadline time.
        """
        for item in sorted(series, key=lambda x: x.ts):
            _, s = self._series(item.device, item.metric)
            s.value, s.ts, s.tags = item.value, item.ts, dict(item.tags)
            self._now = max(self._now, item.ts)
        restored = restore_alerts(self._rts, alerts)
        self._install(self.ruleset, self._rts)
        return restored

    def reload(self, ruleset: RuleSet) -> ReloadResult:
        """Swap in ``ruleset``; rules with an unchanged fingerprint keep their alerts."""
        self._count_plans()
        runtimes, result = carry_over(self._rts, ruleset)
        self._install(ruleset, runtimes)
        return result

    # --------------------------------------------------------------- counters

    def counters(self) -> dict[str, int]:
        """Totals for ``/metrics``: evaluations, undefined, window points kept and dropped…"""
        self._count_plans()
        return counters(self._rts, self._devices, self._dropped_retired, len(self._heap))

    def rule_counters(self) -> dict[str, dict[str, int]]:
        """Per rule: ``{"evaluations": n, "undefined": n}``."""
        self._count_plans()
        return rule_counters(self._rts)
