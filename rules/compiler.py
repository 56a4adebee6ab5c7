"""Type-check an expression tree and compile it to nested Python closures.

Why our own tokenizer + Pratt parser + closures, and not ``eval`` or Python's
``ast``: the language is tiny, and a grammar that only *has* the allowed
constructs is easier to prove safe than a blacklist over Python's grammar.
Nothing is ever passed to ``eval``/``exec``/``compile``; a compiled expression
is a tree of closures over the :class:`Context` of one evaluation, about as fast
as ``eval`` of a code object for these sizes.

Static types (``num``, ``bool``, ``str``, ``duration``, ``list`` and ``any`` for
values only known at run time — ``value`` and other metrics) let most mistakes be
refused at load time: arithmetic on a string, comparing a string with a number,
``and`` on a number, a duration outside a window call, a window without a
duration. What is only known at run time (``value`` is a string today) makes the
evaluation *undefined*: closures raise :class:`Undefined`, and the caller treats
the whole ``when``/``clear`` as false and counts it (DESIGN §6). Evaluation
goes left to right and ``and``/``or`` short-circuit, so ``false and X`` never
meets X. Equality of true/false with a number or string is ``false``, not
undefined (switches report ``true`` or ``"on"`` depending on the firmware).

Bounded work: numbers are floats (no big integers), there is no ``**`` and no
operator on strings but comparison, lists are literal, nesting and length are
capped — so one evaluation costs time linear in the expression's size.

This module resolves names and checks types; the closures themselves are built
by :mod:`rules.closures` (and :mod:`rules.fused` for the common shapes).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rules import closures
from rules.closures import ORDER
from rules.context import Fn
from rules.fused import WindowTest, fuse_logic, fuse_value_cmp, fuse_window_cmp, threshold
from rules.lexer import ExprError
from rules.parser import (
    SCALAR_FUNCTIONS,
    WINDOW_FUNCTIONS,
    Binary,
    Bool,
    Call,
    Dur,
    ListLit,
    MetricRef,
    Name,
    Node,
    Num,
    Str,
    Tag,
    Unary,
    parse,
    unparse,
)

NUM, BOOL, STR, DUR, LIST, ANY = "number", "true/false", "string", "duration", "list", "any"


@dataclass(frozen=True, slots=True)
class Compiled:
    """A checked, compiled expression and what the engine must keep for it.

    ``windows`` lists (metric or None for the matched metric, span ns);
    ``absent`` the spans of ``absent()``; ``metrics`` other metrics read by name;
    ``thresholds`` numbers compared with ``value`` (charts in ``rules replay``).
    """

    text: str
    normalized: str
    fn: Fn
    windows: tuple[tuple[str | None, int], ...]
    absent: tuple[int, ...]
    metrics: tuple[str, ...]
    thresholds: tuple[float, ...]


@dataclass
class _Needs:
    windows: set[tuple[str | None, int]] = field(default_factory=set)
    absent: set[int] = field(default_factory=set)
    metrics: set[str] = field(default_factory=set)
    thresholds: list[float] = field(default_factory=list)


def compile_condition(text: str, stale_after: int) -> Compiled:
    """Parse, check and compile a ``when``/``clear`` condition; raise :class:`ExprError`.

    ``stale_after`` (ns): another metric older than this is undefined.
    """
    tree = parse(text)
    needs = _Needs()
    kind, fn = _Compiler(stale_after, needs).compile(tree)
    if kind not in (BOOL, ANY):
        raise ExprError(f"a condition must be true/false, but this is a {kind}", tree.pos)
    if kind == ANY:
        fn = closures.as_bool(fn)
    return Compiled(
        text=text,
        normalized=unparse(tree),
        fn=fn,
        windows=tuple(sorted(needs.windows, key=lambda w: (w[0] or "", w[1]))),
        absent=tuple(sorted(needs.absent)),
        metrics=tuple(sorted(needs.metrics)),
        thresholds=tuple(needs.thresholds),
    )


class _Compiler:
    def __init__(self, stale_after: int, needs: _Needs) -> None:
        self.stale_after = stale_after
        self.needs = needs
        # Compiled window calls → (metric, span, function), so that a comparison
        # with a constant can read the window itself instead of calling them.
        self.window_calls: dict[Fn, tuple[str | None, int, str]] = {}
        self.window_tests: dict[Fn, WindowTest] = {}  # the same, compared with a constant

    def compile(self, node: Node) -> tuple[str, Fn]:
        match node:
            case Num(value=v):
                if v != v or v in (float("inf"), float("-inf")):
                    raise ExprError("number out of range", node.pos)
                return NUM, closures.const(v)
            case Str(value=s):
                return STR, closures.const(s)
            case Bool(value=b):
                return BOOL, closures.const(b)
            case Dur():
                raise ExprError(
                    "a duration is only allowed as the last argument of a window function "
                    "or absent()",
                    node.pos,
                )
            case ListLit():
                raise ExprError("a list is only allowed on the right of 'in'", node.pos)
            case Name(name=name):
                return self.name(node, name)
            case MetricRef(name=name):
                return ANY, self.metric(name)
            case Tag(key=key):
                return STR, closures.tag(key)
            case Unary(op="not", operand=operand):
                kind, fn = self.compile(operand)
                self.require(kind, (BOOL,), "'not'", operand)
                return BOOL, closures.negation(fn, kind == ANY)
            case Unary(op="-", operand=operand):
                kind, fn = self.compile(operand)
                self.require(kind, (NUM,), "'-'", operand)
                return NUM, lambda c: -closures.num(fn(c))
            case Binary(op="and" | "or" as op, left=left, right=right):
                lk, lf = self.compile(left)
                rk, rf = self.compile(right)
                self.require(lk, (BOOL,), f"'{op}'", left)
                self.require(rk, (BOOL,), f"'{op}'", right)
                if lk == ANY:
                    lf = closures.as_bool(lf)
                if rk == ANY:
                    rf = closures.as_bool(rf)
                fused = fuse_logic(op, left, lf, right, rf, self.window_tests)
                if fused is not None:
                    return BOOL, fused
                if op == "and":
                    return BOOL, lambda c: lf(c) and rf(c)
                return BOOL, lambda c: lf(c) or rf(c)
            case Binary(op="in" | "notin" as op, left=left, right=right):
                return BOOL, self.membership(op, left, right)
            case Binary(op=op, left=left, right=right) if op in ORDER or op in (
                "==",
                "!=",
            ):
                return BOOL, self.comparison(op, left, right)
            case Binary(op=op, left=left, right=right):
                return NUM, self.arithmetic(op, left, right)
            case Call(fn=fn, args=args):
                return self.call(node, fn, args)
        raise ExprError("unsupported expression", node.pos)

    def require(self, kind: str, allowed: tuple[str, ...], what: str, node: Node) -> None:
        if kind != ANY and kind not in allowed:
            raise ExprError(f"{what} needs a {' or '.join(allowed)}, got a {kind}", node.pos)

    def name(self, node: Node, name: str) -> tuple[str, Fn]:
        if name == "value":
            return ANY, closures.value
        if name == "device":
            return STR, lambda c: c.device
        return ANY, self.metric(name)

    def metric(self, name: str) -> Fn:
        self.needs.metrics.add(name)
        return closures.latest(name, self.stale_after)

    def arithmetic(self, op: str, left: Node, right: Node) -> Fn:
        lk, lf = self.compile(left)
        rk, rf = self.compile(right)
        for kind, side in ((lk, left), (rk, right)):
            if kind == STR:
                raise ExprError(f"arithmetic on strings is not allowed ('{op}')", side.pos)
            self.require(kind, (NUM,), f"'{op}'", side)
        return closures.arithmetic(op, lf, rf, right.value if isinstance(right, Num) else None)

    def comparison(self, op: str, left: Node, right: Node) -> Fn:
        lk, lf = self.compile(left)
        rk, rf = self.compile(right)
        for kind, side in ((lk, left), (rk, right)):
            if kind in (DUR, LIST):
                raise ExprError(f"cannot compare a {kind}", side.pos)
        if lk != ANY and rk != ANY and lk != rk:
            raise ExprError(f"cannot compare a {lk} with a {rk}", right.pos)
        if op in ORDER and BOOL in (lk, rk):
            raise ExprError(f"'{op}' cannot order true/false values", left.pos)
        self.note_threshold(left, right)
        if op in ORDER:
            if isinstance(right, Num) and isinstance(left, Name) and left.name == "value":
                return fuse_value_cmp(*threshold(op, right.value))
            if isinstance(right, Num) and lf in self.window_calls:
                test: WindowTest = (*self.window_calls[lf], *threshold(op, right.value))
                fused = fuse_window_cmp(*test)
                self.window_tests[fused] = test
                return fused
            bound = threshold(op, right.value) if isinstance(right, Num) else None
            return closures.order(op, lf, rf, bound)
        return closures.equality(lf, rf, op == "!=")

    def note_threshold(self, left: Node, right: Node) -> None:
        for a, b in ((left, right), (right, left)):
            if isinstance(a, Name) and a.name == "value" and isinstance(b, Num):
                self.needs.thresholds.append(b.value)

    def membership(self, op: str, left: Node, right: Node) -> Fn:
        if not isinstance(right, ListLit):
            raise ExprError(
                f"'{'not in' if op == 'notin' else 'in'}' needs a list on its right, e.g. [1, 2]",
                right.pos,
            )
        lk, lf = self.compile(left)
        if lk in (DUR, LIST):
            raise ExprError(f"cannot look up a {lk} in a list", left.pos)
        items: list[Fn] = []
        for item in right.items:
            ik, ifn = self.compile(item)
            if ik in (DUR, LIST):
                raise ExprError(f"a list cannot hold a {ik}", item.pos)
            if lk != ANY and ik != ANY and ik != lk:
                raise ExprError(f"cannot look up a {lk} among {ik} values", item.pos)
            items.append(ifn)
        return closures.member(lf, items, op == "notin")

    def call(self, node: Node, fn: str, args: tuple[Node, ...]) -> tuple[str, Fn]:
        last = args[-1] if args else None
        if fn == "absent":
            if len(args) != 1 or not isinstance(last, Dur):
                raise ExprError("absent() takes one duration, e.g. absent(10m)", node.pos)
            self.needs.absent.add(last.ns)
            return BOOL, closures.absent(last.ns)
        if fn in WINDOW_FUNCTIONS and isinstance(last, Dur):
            return NUM, self.window(node, fn, args[:-1], last)
        if fn in WINDOW_FUNCTIONS and fn not in SCALAR_FUNCTIONS:
            raise ExprError(
                f"{fn}() is a window function: its last argument must be a duration, e.g. {fn}(5m)",
                node.pos,
            )
        for arg in args:
            if isinstance(arg, Dur):
                raise ExprError(f"{fn}() does not take a duration here", arg.pos)
        compiled = [self.compile(a) for a in args]
        for (kind, _), arg in zip(compiled, args, strict=True):
            if kind == STR:
                raise ExprError(f"arithmetic on strings is not allowed ({fn}())", arg.pos)
            self.require(kind, (NUM,), f"{fn}()", arg)
        fns = [f for _, f in compiled]
        if fn == "abs":
            if len(fns) != 1:
                raise ExprError("abs() takes one argument", node.pos)
            return NUM, closures.absolute(fns[0])
        if fn == "round":
            return NUM, self.round(node, args, fns)
        if len(fns) < 2:
            raise ExprError(
                f"{fn}() takes two or more numbers, or a duration last for a window "
                f"(e.g. {fn}(5m))",
                node.pos,
            )
        pick = min if fn == "min" else max
        return NUM, lambda c: pick(closures.num(f(c)) for f in fns)

    def round(self, node: Node, args: tuple[Node, ...], fns: list[Fn]) -> Fn:
        if len(fns) == 1:
            return closures.rounded(fns[0], None)
        if len(fns) == 2 and isinstance(args[1], Num) and args[1].value in range(0, 16):
            return closures.rounded(fns[0], int(args[1].value))
        raise ExprError("round() takes a number and optionally digits 0..15", node.pos)

    def window(self, node: Node, fn: str, args: tuple[Node, ...], dur: Dur) -> Fn:
        if len(args) > 1:
            raise ExprError(f"{fn}() takes an optional metric and a duration", node.pos)
        metric: str | None = None
        if args:
            target = args[0]
            if isinstance(target, MetricRef) or (
                isinstance(target, Name) and target.name not in ("device",)
            ):
                name = target.name
                metric = None if name == "value" else name
            else:
                raise ExprError(
                    f"the first argument of {fn}() must be a metric name, e.g. {fn}(humidity, 5m)",
                    target.pos,
                )
        span = dur.ns
        self.needs.windows.add((metric, span))
        over = closures.window(metric, span, fn)
        self.window_calls[over] = (metric, span, fn)
        return over
