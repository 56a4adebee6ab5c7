"""The run-time closures a compiled expression is made of (code generation).

Each builder takes closures already compiled for the operands and returns the
closure of one construct over the :class:`Context` of an evaluation; whatever is
only known at run time and makes no sense (a string in arithmetic, a division by
zero, a stale metric, an empty window) raises :class:`Undefined`. Type checks are
done before, in :mod:`rules.compiler`; the fused shapes are in :mod:`rules.fused`.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from rules.context import _MISSING, UNDEFINED, Context, Fn
from rules.windows import Window

__all__ = [
    "ARITH",
    "ORDER",
    "absent",
    "absolute",
    "arithmetic",
    "as_bool",
    "const",
    "equality",
    "latest",
    "member",
    "negation",
    "num",
    "order",
    "rounded",
    "same_kind",
    "tag",
    "value",
    "window",
]


def as_bool(fn: Fn) -> Fn:
    def run(c: Context) -> bool:
        v = fn(c)
        if type(v) is bool:
            return v
        raise UNDEFINED

    return run


def num(v: Any) -> float:
    if type(v) is float:
        return v
    if type(v) is int:
        return float(v)
    raise UNDEFINED


def same_kind(a: Any, b: Any) -> bool:
    ta, tb = type(a), type(b)
    if ta is tb:
        return True
    return ta in (int, float) and tb in (int, float)


ARITH: dict[str, Callable[[float, float], float]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
}
ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def const(v: Any) -> Fn:
    return lambda c: v


def tag(key: str) -> Fn:
    def tag(c: Context) -> str:
        v = c.tags.get(key)
        if v is None:
            raise UNDEFINED
        return str(v)

    return tag


def negation(fn: Fn, check: bool) -> Fn:
    if not check:
        return lambda c: not fn(c)

    def run(c: Context) -> bool:
        v = fn(c)
        if type(v) is not bool:
            raise UNDEFINED
        return not v

    return run


def value(c: Context) -> Any:
    """The reading's value (undefined when evaluating for ``absent``, without a reading)."""
    v = c.value
    if v is _MISSING:
        raise UNDEFINED
    return v


def latest(name: str, stale: int) -> Fn:
    """The latest value of another metric of the device, undefined when older than ``stale``."""

    def latest(c: Context) -> Any:
        s = c.metrics.get(name)
        if s is None or c.now - s.ts > stale:
            raise UNDEFINED
        return s.value

    return latest


def arithmetic(op: str, lf: Fn, rf: Fn, k: float | None) -> Fn:
    """``lf op rf``; ``k``: the right operand when it is a number literal."""
    if op in ARITH:
        f = ARITH[op]
        if k is not None:
            k_ = k

            def arith_const(c: Context) -> float:
                a = lf(c)
                if type(a) is not float:
                    a = num(a)
                return f(a, k_)

            return arith_const

        def arith(c: Context) -> float:
            a = lf(c)
            if type(a) is not float:
                a = num(a)
            b = rf(c)
            if type(b) is not float:
                b = num(b)
            return f(a, b)

        return arith
    if op == "/":

        def div(c: Context) -> float:
            b = num(rf(c))
            if b == 0.0:
                raise UNDEFINED
            return num(lf(c)) / b

        return div

    def mod(c: Context) -> float:
        b = num(rf(c))
        if b == 0.0:
            raise UNDEFINED
        return num(lf(c)) % b

    return mod


def order(op: str, lf: Fn, rf: Fn, bound: tuple[bool, float] | None) -> Fn:
    """``lf op rf`` for ``<``, ``<=``, ``>``, ``>=``; ``bound``: (above, bound) of a literal."""
    if bound is not None:
        above, k = bound

        def cmp_const(c: Context) -> bool:
            a = lf(c)
            if type(a) is not float:
                a = num(a)
            return a > k if above else a < k

        return cmp_const
    f = ORDER[op]

    def cmp(c: Context) -> bool:
        a, b = lf(c), rf(c)
        if not same_kind(a, b) or type(a) is bool:
            raise UNDEFINED
        return f(a, b)

    return cmp


def equality(lf: Fn, rf: Fn, negate: bool) -> Fn:
    def eq(c: Context) -> bool:
        a, b = lf(c), rf(c)
        if not same_kind(a, b):
            # A string vs a number is undefined (DESIGN §6); a true/false vs
            # anything else is simply unequal, so that a switch rule can say
            # `value == true or value == "on"` for devices of either kind.
            if type(a) is bool or type(b) is bool:
                return negate
            raise UNDEFINED
        return bool(a != b) if negate else bool(a == b)

    return eq


def member(lf: Fn, items: list[Fn], negate: bool) -> Fn:
    def member(c: Context) -> bool:
        a = lf(c)
        found = False
        for fn in items:
            b = fn(c)
            if same_kind(a, b) and a == b:
                found = True
                break
        return found != negate

    return member


def absent(span: int) -> Fn:
    def absent(c: Context) -> bool:
        s = c.series
        if s is None:
            raise UNDEFINED
        return c.now - s.ts >= span

    return absent


def absolute(fa: Fn) -> Fn:
    def absolute(c: Context) -> float:
        a = fa(c)
        if type(a) is not float:
            a = num(a)
        return abs(a)

    return absolute


def rounded(a: Fn, digits: int | None) -> Fn:
    if digits is None:
        return lambda c: float(round(num(a(c))))
    return lambda c: round(num(a(c)), digits)


def window(metric: str | None, span: int, fn: str) -> Fn:
    """``fn(metric, span)`` over the series' window (``metric`` None: the matched one)."""
    method: Callable[[Window, int], float | None] = getattr(Window, fn)
    zero_if_missing = fn in ("count", "sum")

    def over(c: Context) -> float:
        s = c.series if metric is None else c.metrics.get(metric)
        w = s.windows.get(span) if s is not None else None
        if w is None:
            if zero_if_missing:
                return 0.0
            raise UNDEFINED
        result = method(w, c.now)
        if result is None:
            raise UNDEFINED
        return result

    return over
