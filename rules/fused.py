"""Fused closures: the common rule shapes compiled to one closure each.

Most rules are a window function or ``value`` compared with a constant, alone
or joined by ``and``/``or``. Every closure or function call costs about as much
as the work inside it, so these shapes get one closure instead of a tree of
three or four, and compare inline instead of calling ``operator.gt`` & co. Each
behaves exactly like the tree it replaces (same :class:`Undefined` cases);
``tests/rules/test_rules_expressions_fused.py`` holds them to that.
"""

from __future__ import annotations

from collections.abc import Callable
from math import inf, nextafter

from rules.context import UNDEFINED, Context, Fn
from rules.parser import Binary, Name, Node, Num
from rules.windows import Window

ORDERINGS = frozenset({"<", "<=", ">", ">="})


def threshold(op: str, k: float) -> tuple[bool, float]:
    """``x OP k`` as ``x > bound`` (above) or ``x < bound``, for every float x.

    ``x >= k`` is ``x > nextafter(k, -inf)``: no float lies between the two, and
    NaN fails both; ``k`` is finite (the compiler refuses inf and nan). One
    strict test per side keeps each fused closure to a single shape.
    """
    if op == ">":
        return True, k
    if op == ">=":
        return True, nextafter(k, -inf)
    if op == "<":
        return False, k
    return False, nextafter(k, inf)


def fuse_value_cmp(above: bool, bound: float) -> Fn:
    """``value CMP k``: the hot path of most rules."""

    def value_cmp_const(c: Context) -> bool:
        a = c.value
        if type(a) is not float:
            if type(a) is not int:
                raise UNDEFINED
            a = float(a)
        return a > bound if above else a < bound

    return value_cmp_const


WindowTest = tuple[str | None, int, str, bool, float]  # metric, span, function, threshold


def fuse_window_cmp(metric: str | None, span: int, fn: str, above: bool, bound: float) -> Fn:
    """``fn([metric,] span) CMP k``."""
    method: Callable[[Window, int], float | None] = getattr(Window, fn)
    # count/sum of a window the series does not have: 0
    empty = (bound < 0.0 if above else bound > 0.0) if fn in ("count", "sum") else None

    def window_cmp_const(c: Context) -> bool:
        s = c.series if metric is None else c.metrics.get(metric)
        w = s.windows.get(span) if s is not None else None
        if w is None:
            if empty is None:
                raise UNDEFINED
            return empty
        result = method(w, c.now)
        if result is None:
            raise UNDEFINED
        return result > bound if above else result < bound

    return window_cmp_const


def _value_test(node: Node) -> tuple[bool, float] | None:
    """The threshold if ``node`` is ``value CMP k`` with an ordering CMP."""
    if (
        isinstance(node, Binary)
        and node.op in ORDERINGS
        and isinstance(node.left, Name)
        and node.left.name == "value"
        and isinstance(node.right, Num)
    ):
        return threshold(node.op, node.right.value)
    return None


def fuse_logic(
    op: str, left: Node, lf: Fn, right: Node, rf: Fn, window_tests: dict[Fn, WindowTest]
) -> Fn | None:
    """``A and/or B`` as one closure when A or B is ``value CMP k`` (else None).

    ``stop`` is the result that ends the evaluation early: true for ``or``,
    false for ``and``; otherwise the result is the other side's.
    """
    stop = op == "or"
    test = _value_test(right)
    if test is not None:
        wt = window_tests.get(lf)
        if wt is not None:
            return _window_then_value(stop, wt, *test)
        return _then_value(stop, lf, *test)
    test = _value_test(left)
    if test is not None:
        return _value_then(stop, *test, rf)
    return None


def _then_value(stop: bool, lf: Fn, above: bool, bound: float) -> Fn:
    """``X or value CMP k`` / ``X and value CMP k``."""
    early = stop  # (returned instead of `stop`: mypy narrows `stop` to Any after `is`)

    def then_value(c: Context) -> bool:
        if lf(c) is stop:
            return early
        a = c.value
        if type(a) is not float:
            if type(a) is not int:
                raise UNDEFINED
            a = float(a)
        return a > bound if above else a < bound

    return then_value


def _value_then(stop: bool, above: bool, bound: float, rf: Fn) -> Fn:
    """``value CMP k or X`` / ``value CMP k and X``."""

    def value_then(c: Context) -> bool:
        a = c.value
        if type(a) is not float:
            if type(a) is not int:
                raise UNDEFINED
            a = float(a)
        if (a > bound if above else a < bound) is stop:
            return stop
        return rf(c) is True

    return value_then


def _window_then_value(stop: bool, wt: WindowTest, above2: bool, bound2: float) -> Fn:
    """``fn(span) CMP k or value CMP k2`` (or ``and``): both tests inline."""
    metric, span, fn, above, bound = wt
    method: Callable[[Window, int], float | None] = getattr(Window, fn)
    empty = (bound < 0.0 if above else bound > 0.0) if fn in ("count", "sum") else None

    def window_then_value(c: Context) -> bool:
        s = c.series if metric is None else c.metrics.get(metric)
        w = s.windows.get(span) if s is not None else None
        if w is None:
            if empty is None:
                raise UNDEFINED
            if empty is stop:
                return stop
        else:
            result = method(w, c.now)
            if result is None:
                raise UNDEFINED
            if (result > bound if above else result < bound) is stop:
                return stop
        a = c.value
        if type(a) is not float:
            if type(a) is not int:
                raise UNDEFINED
            a = float(a)
        return a > bound2 if above2 else a < bound2

    return window_then_value
