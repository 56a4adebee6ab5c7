"""Property tests: the compiler never crashes, never accepts unsafe constructs, and
everything it accepts evaluates in bounded work to true, false or undefined."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules import ExprError, compile_condition
from rules.context import Context, Undefined
from rules.windows import Series

STALE = 300 * 10**9
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

NAMES = [
    "value",
    "device",
    "temperature",
    "humidity",
    "tags.zone",
    'tags["x-y"]',
    'metric("pm2-5")',
    "count",
    "avg",
]
WINDOWS = ["avg", "min", "max", "sum", "count", "last", "delta", "stddev", "rate"]
UNSAFE = [
    "value.__class__",
    "device[0]",
    "lambda x: x",
    "[x for x in [1]]",
    "__import__('os')",
    "2 ** 99999",
    "open('f')",
    "exec('1')",
    "value.real",
    "().__class__",
    "{}",
    "a if b else c",
    "import os",
    "x := 1",
    "f'{value}'",
    "value; 1",
    "getattr(value, 'x')",
    "'a' * 99999",
    '"a" + "b"',
    "eval('1')",
    "tags.zone.upper()",
    "[1,2][0]",
]


def leaves() -> st.SearchStrategy[str]:
    numbers = st.floats(allow_nan=False, allow_infinity=False, width=32).map(lambda f: repr(abs(f)))
    strings = st.text(alphabet="abc xyz-_", max_size=5).map(lambda s: '"' + s + '"')
    durations = st.sampled_from(["1s", "30s", "5m", "1h", "500ms"])
    windows = st.builds(lambda f, d: f"{f}({d})", st.sampled_from(WINDOWS), durations)
    windows2 = st.builds(
        lambda f, m, d: f"{f}({m}, {d})",
        st.sampled_from(WINDOWS),
        st.sampled_from(["humidity", "value", 'metric("a-b")']),
        durations,
    )
    return st.one_of(
        numbers,
        strings,
        st.sampled_from([*NAMES, "true", "false"]),
        windows,
        windows2,
        durations.map(lambda d: f"absent({d})"),
    )


def grow(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    binary = st.builds(
        lambda a, op, b: f"({a} {op} {b})",
        children,
        st.sampled_from(["and", "or", "==", "!=", "<", "<=", ">", ">=", "+", "-", "*", "/", "%"]),
        children,
    )
    unary = st.builds(lambda op, a: f"{op}({a})", st.sampled_from(["not ", "-"]), children)
    calls = st.builds(
        lambda f, args: f"{f}({', '.join(args)})",
        st.sampled_from(["abs", "round", "min", "max"]),
        st.lists(children, min_size=1, max_size=3),
    )
    member = st.builds(
        lambda a, items: f"{a} in [{', '.join(items)}]", children, st.lists(children, max_size=3)
    )
    return st.one_of(binary, unary, calls, member)


EXPRESSIONS = st.recursive(leaves(), grow, max_leaves=12)


def context() -> Context:
    c = Context()
    s = Series("d", "m")
    s.set_spans([10**9, 30 * 10**9, 300 * 10**9, 3600 * 10**9, 500 * 10**6], 100)
    for i, v in enumerate([1.0, 5.0, 3.0]):
        s.record(v, i * 10**9)
    c.value, c.device, c.tags, c.now, c.series = 3.0, "d", {"zone": "n"}, 2 * 10**9, s
    c.metrics = {"m": s, "humidity": s}
    return c


def evaluate(expr: str) -> Any:
    try:
        compiled = compile_condition(expr, STALE)
    except ExprError:
        return "refused"
    try:
        result = compiled.fn(context())
    except Undefined:
        return None
    assert type(result) is bool
    return result


@FAST
@given(st.text(max_size=80))
def test_random_text_only_ever_raises_expr_error(text: str) -> None:
    evaluate(text)


@FAST
@given(st.text(alphabet="valuedics()[]<>=!+-*/% .,'\"0123456789msh_tagnot", max_size=60))
def test_expression_shaped_text_only_ever_raises_expr_error(text: str) -> None:
    evaluate(text)


@FAST
@given(EXPRESSIONS)
def test_generated_expressions_compile_or_are_refused_cleanly(expr: str) -> None:
    result = evaluate(expr)
    assert result in ("refused", None, True, False)


@FAST
@given(EXPRESSIONS, st.sampled_from(UNSAFE), st.sampled_from(["and", "or", "==", "+"]))
def test_unsafe_constructs_are_refused_anywhere(expr: str, unsafe: str, op: str) -> None:
    for text in (f"({expr}) {op} ({unsafe})", f"({unsafe}) {op} ({expr})", unsafe):
        assert evaluate(text) == "refused", text


@FAST
@given(st.lists(st.floats(min_value=-1e300, max_value=1e300), min_size=1, max_size=6))
def test_arithmetic_never_builds_big_objects(numbers: list[float]) -> None:
    # Chained multiplication stays a float (or inf); there is no int, no ** and no
    # string repetition to blow up.
    expr = " * ".join(repr(abs(n)) for n in numbers) + " >= 0"
    assert evaluate(expr) in (True, False, None)
