"""The engine's deadlines, and when the next of them is due.

Time-based work is due at exact instants: ``for``/``keep_firing_for``/``repeat``
deadlines (a heap of (deadline, rule order, device), lazily invalidated and
compacted now and then) and ``absent(D)`` deadlines (per (metric, D) an
insertion-ordered dict of watched series; because ``now`` only grows,
re-inserting a series on each reading keeps it ordered by last-seen time, so the
earliest deadline is always the first entry — O(1) per reading, one entry per
series).

:class:`_Deadlines` is a base of :class:`rules.engine.Engine`, which owns the
attributes declared here and processes what is due in ``tick``.
"""

from __future__ import annotations

import heapq

from rules.runtime import _AbsentWatch, _RuleRuntime
from rules.state import AlertRecord, deadline
from rules.windows import Series

__all__ = ["_Deadlines"]


class _Deadlines:
    """Scheduling of alert deadlines; the attributes are set up by the engine."""

    _heap: list[tuple[int, int, str, int]]
    _seq: int
    _pushes: int
    _rts: list[_RuleRuntime]
    _watches: list[_AbsentWatch]
    _watch_by_metric: dict[str, list[_AbsentWatch]]
    _watch_any: list[_AbsentWatch]

    def _set_watches(self, watches: list[_AbsentWatch]) -> None:
        """Watch for ``absent()`` with ``watches``, indexed by metric (None: any)."""
        self._watches = watches
        self._watch_by_metric = {}
        self._watch_any = [w for w in self._watches if w.metric is None]
        for w in self._watches:
            if w.metric is not None:
                self._watch_by_metric.setdefault(w.metric, []).append(w)

    def next_deadline(self) -> int | None:
        """The earliest time at which :meth:`tick` has work (None: nothing scheduled)."""
        heap = self._heap
        while heap and not self._valid(heap[0]):
            heapq.heappop(heap)
        best = heap[0][0] if heap else None
        for w in self._watches:
            due = w.due()
            if due is not None and (best is None or due < best):
                best = due
        return best

    def _due_by(self, now: int) -> bool:
        """Is any deadline possibly due? (A stale heap top may say yes; tick sorts it out.)"""
        if self._heap and self._heap[0][0] <= now:
            return True
        for w in self._watches:
            due = w.due()
            if due is not None and due <= now:
                return True
        return False

    def _schedule(
        self, rt: _RuleRuntime, device: str, rec: AlertRecord, previous: int | None
    ) -> None:
        due = deadline(rec, rt.rule.timing)
        if due is None or due == previous:
            return
        self._seq += 1
        heapq.heappush(self._heap, (due, rt.index, device, self._seq))
        self._pushes += 1
        if self._pushes > 10_000:
            self._compact()

    def _compact(self) -> None:
        """Drop heap entries that no longer match a record's deadline (they pile up lazily)."""
        self._pushes = 0
        live = [e for e in self._heap if self._valid(e)]
        if len(live) < len(self._heap):
            heapq.heapify(live)
            self._heap = live

    def _valid(self, entry: tuple[int, int, str, int]) -> bool:
        due, index, device, _ = entry
        rt = self._rts[index]
        rec = rt.records.get(device)
        return rec is not None and deadline(rec, rt.rule.timing) == due

    def _arm(self, s: Series, now: int) -> None:
        """Restart the ``absent()`` watches of ``s``: last seen at ``now``."""
        key = (s.device, s.metric)
        for w in self._watch_by_metric.get(s.metric, ()):
            w.armed[key] = now
            w.armed.move_to_end(key)
        for w in self._watch_any:
            w.armed[key] = now
            w.armed.move_to_end(key)
