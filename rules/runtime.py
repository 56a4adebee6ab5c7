"""The engine's per-rule runtime structures: a rule with its alert records and
counters (:class:`_RuleRuntime`), the cached candidate rules of a series
(:class:`_Plan`), the series watched by an ``absent(span)`` (:class:`_AbsentWatch`),
and what a rule set needs of the series (:func:`window_spans`).
"""

from __future__ import annotations

from collections import OrderedDict

from rules.matching import Entry, compile_glob, topic_matches
from rules.model import Rule
from rules.state import AlertRecord
from rules.windows import Series

__all__ = ["_AbsentWatch", "_Plan", "_RuleRuntime", "window_spans"]


class _RuleRuntime:
    """A rule plus its alert records and counters."""

    __slots__ = (
        "absence",
        "accepts_device",
        "clear",
        "evaluations",
        "index",
        "records",
        "rule",
        "undefined",
        "when",
    )

    def __init__(self, rule: Rule, index: int) -> None:
        self.rule = rule
        self.index = index
        self.when = rule.when.fn
        self.clear = rule.clear.fn if rule.clear else None
        self.records: dict[str, AlertRecord] = {}
        self.evaluations = 0
        self.undefined = 0
        self.absence = rule.is_absence
        glob = rule.match.device
        self.accepts_device = compile_glob(glob) if glob else None

    def accepts(self, s: Series) -> bool:
        """Does this rule's match accept the series (for tick evaluations)?"""
        m = self.rule.match
        if m.metric is not None and m.metric != s.metric:
            return False
        if self.accepts_device is not None and not self.accepts_device(s.device):
            return False
        if m.tags and not all(s.tags.get(k) == v for k, v in m.tags):
            return False
        return m.topic is None or topic_matches(m.topic, s.topic)


class _Plan:
    """The candidate rules of a series, in rule order (cached on the series, shared).

    ``plain``: none has a tags/topic filter (decided per reading) or an
    ``absent()``, so ``observe`` may take its fast path. ``hits`` counts the
    fast-path readings: each is one evaluation of every rule of the plan, added
    to the rules' counters by ``Engine._count_plans`` before anyone reads them.
    """

    __slots__ = ("entries", "hits", "pairs", "plain", "rts")

    def __init__(self, entries: tuple[Entry[_RuleRuntime], ...], plain: bool) -> None:
        self.entries = entries
        self.rts = tuple(e.item for e in entries)
        self.pairs = tuple((rt.when, rt) for rt in self.rts)
        self.plain = plain
        self.hits = 0


class _AbsentWatch:
    """Series watched by the ``absent(span)`` of rules matching ``metric`` (None: any)."""

    __slots__ = ("armed", "metric", "runtimes", "span")

    def __init__(self, metric: str | None, span: int) -> None:
        self.metric = metric
        self.span = span
        self.runtimes: list[_RuleRuntime] = []
        self.armed: OrderedDict[tuple[str, str], int] = OrderedDict()

    def due(self) -> int | None:
        if not self.armed:
            return None
        return next(iter(self.armed.values())) + self.span


def window_spans(
    runtimes: list[_RuleRuntime],
) -> tuple[dict[str, set[int]], set[int], list[_AbsentWatch]]:
    """What the rules need of the series: window spans per metric, spans for any
    metric, and one :class:`_AbsentWatch` per (metric, ``absent`` span)."""
    spans: dict[str, set[int]] = {}
    any_spans: set[int] = set()
    watches: dict[tuple[str | None, int], _AbsentWatch] = {}
    for rt in runtimes:
        r = rt.rule
        exprs = [r.when] + ([r.clear] if r.clear else [])
        for expr in exprs:
            for metric, span in expr.windows:
                target = metric if metric is not None else r.match.metric
                if target is None:
                    any_spans.add(span)
                else:
                    spans.setdefault(target, set()).add(span)
            for span in expr.absent:
                watch = watches.setdefault(
                    (r.match.metric, span), _AbsentWatch(r.match.metric, span)
                )
                if rt not in watch.runtimes:
                    watch.runtimes.append(rt)
    return spans, any_spans, list(watches.values())
