"""Common shapes compile to fused closures (``avg(5m) > 3``, ``value >= 2``, ``A or
value < 1``…); they must behave exactly as the language says: the same truth
value at the boundaries, the same undefined cases, left to right with
short-circuit. Checked against a direct reading of the rules on random shapes."""

from __future__ import annotations

import operator
from collections.abc import Callable
from math import nextafter
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from rules.compiler import compile_condition
from rules.context import Context, Undefined
from rules.windows import Series

S = 10**9
OPS: dict[str, Callable[[Any, Any], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}
WINDOW_FNS = ("avg", "sum", "count", "min", "max", "last", "delta", "rate", "stddev")
# Constants on, just beside and around the values the context holds (3.0 is the
# value, the last point and the average of the 1 s window).
CONSTANTS = [0.0, 1.0, 2.0, 3.0, nextafter(3.0, 4.0), nextafter(3.0, 2.0), 4.0, 5.0, 8.0, 9.5]
VALUES: list[Any] = [3.0, 3, 2.5, nextafter(3.0, 4.0), 0.0, True, "3"]


class Undef(Exception):
    pass


def context(value: Any) -> Context:
    s = Series("d", "m")
    s.set_spans([1 * S, 5 * S], 100)
    for t, v in [(0, 1.0), (1, 5.0), (2, 4.0), (3, 2.0)]:
        s.record(v, t * S // 2)
    other = Series("d", "other")
    other.set_spans([5 * S], 100)
    other.record(4.0, S)
    other.record(5.0, S + 1)
    c = Context()
    c.value, c.device, c.tags, c.now, c.series = value, "d", {}, 3 * S // 2, s
    c.metrics = {"m": s, "other": other}
    return c


Atom = tuple[str, ...]


def atoms() -> st.SearchStrategy[Atom]:
    op = st.sampled_from(sorted(OPS))
    k = st.sampled_from(CONSTANTS).map(repr)
    value = st.tuples(st.just("value"), op, k)
    window = st.tuples(
        st.just("window"),
        st.sampled_from(WINDOW_FNS),
        st.sampled_from(["", "other, "]),
        st.sampled_from(["1s", "5s", "7s"]),  # 7s: a span the series does not keep
        op,
        k,
    )
    latest = st.tuples(st.just("latest"), op, k)  # not fused: a plain subtree
    return st.one_of(value, window, latest)


def text(a: Atom) -> str:
    if a[0] == "value":
        return f"value {a[1]} {a[2]}"
    if a[0] == "window":
        return f"{a[1]}({a[2]}{a[3]}) {a[4]} {a[5]}"
    return f"other {a[1]} {a[2]}"


def truth(a: Atom, c: Context) -> bool:
    """The rule language read literally (DESIGN §6), without the compiler."""
    if a[0] == "value":
        v = c.value
        if type(v) not in (int, float):
            raise Undef
        return OPS[a[1]](float(v), float(a[2]))
    if a[0] == "latest":
        return OPS[a[1]](c.metrics["other"].value, float(a[2]))
    _, fn, metric, dur, op, k = a
    s = c.metrics["other"] if metric else c.series
    assert s is not None
    w = s.windows.get({"1s": 1, "5s": 5, "7s": 7}[dur] * S)
    if w is None:
        if fn in ("count", "sum"):
            return OPS[op](0.0, float(k))
        raise Undef
    result = getattr(w, fn)(c.now)
    if result is None:
        raise Undef
    return OPS[op](result, float(k))


def expected(parts: list[Atom], joins: list[str], c: Context) -> bool | None:
    """Left-associative and/or with short-circuit; an undefined operand met → None."""
    try:
        result = truth(parts[0], c)
        for join, part in zip(joins, parts[1:], strict=True):
            if (join == "or" and result) or (join == "and" and not result):
                continue
            result = truth(part, c)
        return result
    except Undef:
        return None


@settings(max_examples=1500, deadline=None)
@given(
    parts=st.lists(atoms(), min_size=1, max_size=3),
    joins=st.lists(st.sampled_from(["and", "or"]), min_size=2, max_size=2),
    value=st.sampled_from(VALUES),
)
def test_fused_shapes_mean_what_the_language_says(
    parts: list[Atom], joins: list[str], value: Any
) -> None:
    joins = joins[: len(parts) - 1]
    source = text(parts[0])
    for join, part in zip(joins, parts[1:], strict=True):
        source = f"({source}) {join} {text(part)}"
    compiled = compile_condition(source, 300 * S)
    c = context(value)
    try:
        got: bool | None = compiled.fn(c)
    except Undefined:
        got = None
    assert got is expected(parts, joins, c), source


def test_boundaries_of_each_comparison() -> None:
    c = context(3.0)
    for source, want in [
        ("value > 3", False),
        ("value >= 3", True),
        ("value < 3", False),
        ("value <= 3", True),
        ("avg(1s) >= 3", True),  # the 1 s window holds 4.0 and 2.0
        ("avg(1s) > 3", False),
        ("avg(1s) <= 3", True),
        ("avg(1s) < 3", False),
        ("value >= 3.0000000000000004", False),
        ("value <= 2.9999999999999996", False),
        ("count(7s) >= 0 or value > 100", True),  # no such window: count is 0
        ("value > 100 or count(1s) <= 2", True),
    ]:
        assert compile_condition(source, S).fn(c) is want, source
