"""Pratt parser: tokens → a small expression tree (no evaluation here).

The tree has only the node kinds the language has, so an unsafe construct can
not even be represented: attribute access other than ``tags.NAME``, subscripts
other than ``tags["name"]``, calls of anything but a known function name. Each
refusal carries the offset of the offending token for ``file:line:col``.

Binding powers (low → high): ``or`` < ``and`` < ``not`` < comparisons and
``in`` (non-associative: ``a < b < c`` is refused rather than guessed) <
``+ -`` < ``* / %`` < unary ``-`` < call/``.``/``[]``. Nesting is capped so
that a hostile file cannot exhaust the Python stack.
"""

from __future__ import annotations

from dataclasses import dataclass

from rules.durations import format_duration
from rules.lexer import ExprError, Token, tokenize

MAX_DEPTH = 48

SCALAR_FUNCTIONS = frozenset({"abs", "round", "min", "max"})
WINDOW_FUNCTIONS = frozenset(
    {"avg", "min", "max", "sum", "count", "last", "delta", "stddev", "rate"}
)
OTHER_FUNCTIONS = frozenset({"absent", "metric"})
ALL_FUNCTIONS = SCALAR_FUNCTIONS | WINDOW_FUNCTIONS | OTHER_FUNCTIONS

COMPARISONS = frozenset({"==", "!=", "<", "<=", ">", ">="})


@dataclass(frozen=True, slots=True)
class Node:
    pos: int


@dataclass(frozen=True, slots=True)
class Num(Node):
    value: float


@dataclass(frozen=True, slots=True)
class Str(Node):
    value: str


@dataclass(frozen=True, slots=True)
class Bool(Node):
    value: bool


@dataclass(frozen=True, slots=True)
class Dur(Node):
    ns: int
    text: str


@dataclass(frozen=True, slots=True)
class ListLit(Node):
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Name(Node):
    """``value``, ``device`` or another metric of the same device."""

    name: str


@dataclass(frozen=True, slots=True)
class Tag(Node):
    key: str


@dataclass(frozen=True, slots=True)
class MetricRef(Node):
    """``metric("name-with-dash")``: like :class:`Name` for names that are not identifiers."""

    name: str


@dataclass(frozen=True, slots=True)
class Call(Node):
    fn: str
    args: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Unary(Node):
    op: str  # "-" or "not"
    operand: Node


@dataclass(frozen=True, slots=True)
class Binary(Node):
    op: str  # and or + - * / % == != < <= > >= in notin
    left: Node
    right: Node


_INFIX_BP = {
    "or": 10,
    "and": 20,
    "==": 40,
    "!=": 40,
    "<": 40,
    "<=": 40,
    ">": 40,
    ">=": 40,
    "in": 40,
    "not": 40,
    "+": 50,
    "-": 50,
    "*": 60,
    "/": 60,
    "%": 60,
}
_NOT_BP = 30
_UNARY_BP = 70


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.i = 0
        self.depth = 0

    def peek(self) -> Token:
        return self.tokens[self.i]

    def next(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def expect(self, text: str) -> Token:
        tok = self.next()
        if tok.text != text or tok.kind not in ("op", "name"):
            raise ExprError(f"expected {text!r}, found {_describe(tok)}", tok.pos)
        return tok

    def parse(self, min_bp: int = 0) -> Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExprError(f"expression nested more than {MAX_DEPTH} levels deep", self.peek().pos)
        left = self.prefix()
        while True:
            tok = self.peek()
            op = tok.text if tok.kind in ("op", "name") else ""
            bp = _INFIX_BP.get(op)
            if bp is None or bp <= min_bp:
                if tok.kind not in ("eof", "op") and not (tok.kind == "name" and op in _INFIX_BP):
                    raise ExprError(f"expected an operator, found {_describe(tok)}", tok.pos)
                break
            self.next()
            if op == "not":
                in_tok = self.next()
                if in_tok.text != "in" or in_tok.kind != "name":
                    raise ExprError("expected 'in' after 'not'", in_tok.pos)
                op = "notin"
            right = self.parse(bp)
            if bp == 40:
                follow = self.peek()
                if follow.text in COMPARISONS or (
                    follow.text in ("in", "not") and (follow.kind == "name")
                ):
                    raise ExprError(
                        "comparisons cannot be chained; write 'a < b and b < c'", follow.pos
                    )
            left = Binary(tok.pos, op, left, right)
        self.depth -= 1
        return left

    def prefix(self) -> Node:
        tok = self.next()
        if tok.kind == "num":
            return Num(tok.pos, tok.number)
        if tok.kind == "dur":
            return Dur(tok.pos, int(tok.number), tok.text)
        if tok.kind == "str":
            return Str(tok.pos, tok.text)
        if tok.kind == "op":
            if tok.text == "(":
                inner = self.parse()
                self.expect(")")
                return inner
            if tok.text == "[":
                return self.list_literal(tok)
            if tok.text in ("-", "+"):
                operand = self.parse(_UNARY_BP)
                if tok.text == "+":
                    return operand
                if isinstance(operand, Num):
                    return Num(tok.pos, -operand.value)
                return Unary(tok.pos, "-", operand)
            raise ExprError(f"unexpected {_describe(tok)}", tok.pos)
        if tok.kind == "name":
            word = tok.text
            if word == "not":
                return Unary(tok.pos, "not", self.parse(_NOT_BP))
            if word in ("true", "false"):
                return Bool(tok.pos, word == "true")
            if word in ("and", "or", "in"):
                raise ExprError(f"'{word}' needs something on its left", tok.pos)
            return self.name(tok)
        raise ExprError("expression ends too early", tok.pos)

    def name(self, tok: Token) -> Node:
        word = tok.text
        nxt = self.peek()
        if nxt.kind == "op" and nxt.text == "(":
            self.next()
            return self.call(tok)
        if word == "tags":
            return self.tag(tok)
        if nxt.kind == "op" and nxt.text == ".":
            raise ExprError(f"attribute access is not allowed ('{word}.'); only tags.NAME", nxt.pos)
        if nxt.kind == "op" and nxt.text == "[":
            raise ExprError(f"subscripts are not allowed ('{word}['); only tags[\"name\"]", nxt.pos)
        return Name(tok.pos, word)

    def tag(self, tok: Token) -> Node:
        nxt = self.next()
        if nxt.kind == "op" and nxt.text == ".":
            key = self.next()
            if key.kind != "name":
                raise ExprError(
                    f"expected a tag name after 'tags.', found {_describe(key)}", key.pos
                )
            node: Node = Tag(tok.pos, key.text)
        elif nxt.kind == "op" and nxt.text == "[":
            key = self.next()
            if key.kind != "str":
                raise ExprError('tags[...] takes a quoted tag name, e.g. tags["zone"]', key.pos)
            self.expect("]")
            node = Tag(tok.pos, key.text)
        else:
            raise ExprError("'tags' must be followed by .NAME or [\"name\"]", nxt.pos)
        after = self.peek()
        if after.kind == "op" and after.text in (".", "[", "("):
            raise ExprError(f"{after.text!r} is not allowed after a tag", after.pos)
        return node

    def call(self, tok: Token) -> Node:
        fn = tok.text
        if fn not in ALL_FUNCTIONS:
            known = ", ".join(sorted(ALL_FUNCTIONS))
            raise ExprError(f"unknown function {fn!r} (known: {known})", tok.pos)
        args: list[Node] = []
        if not (self.peek().kind == "op" and self.peek().text == ")"):
            while True:
                args.append(self.parse())
                sep = self.next()
                if sep.kind == "op" and sep.text == ")":
                    break
                if not (sep.kind == "op" and sep.text == ","):
                    raise ExprError(f"expected ',' or ')', found {_describe(sep)}", sep.pos)
        else:
            self.next()
        if fn == "metric":
            if len(args) != 1 or not isinstance(args[0], Str):
                raise ExprError(
                    'metric() takes one quoted metric name, e.g. metric("pm2-5")', tok.pos
                )
            if not args[0].value:
                raise ExprError("metric() needs a non-empty name", tok.pos)
            return MetricRef(tok.pos, args[0].value)
        after = self.peek()
        if after.kind == "op" and after.text in (".", "[", "("):
            raise ExprError(f"{after.text!r} is not allowed after a function call", after.pos)
        return Call(tok.pos, fn, tuple(args))

    def list_literal(self, tok: Token) -> Node:
        items: list[Node] = []
        if self.peek().kind == "op" and self.peek().text == "]":
            self.next()
            return ListLit(tok.pos, ())
        while True:
            items.append(self.parse())
            sep = self.next()
            if sep.kind == "op" and sep.text == "]":
                return ListLit(tok.pos, tuple(items))
            if not (sep.kind == "op" and sep.text == ","):
                raise ExprError(f"expected ',' or ']', found {_describe(sep)}", sep.pos)


def _describe(tok: Token) -> str:
    if tok.kind == "eof":
        return "end of expression"
    if tok.kind == "str":
        return "a string"
    return repr(tok.text)


def parse(text: str) -> Node:
    """Parse one expression; raise :class:`ExprError` with the offset of the first problem."""
    parser = _Parser(tokenize(text))
    if parser.peek().kind == "eof":
        raise ExprError("empty expression", 0)
    node = parser.parse()
    tok = parser.peek()
    if tok.kind != "eof":
        raise ExprError(f"unexpected {_describe(tok)}", tok.pos)
    return node


def unparse(node: Node) -> str:
    """Canonical, fully parenthesised text: equal trees give equal text (rule fingerprints)."""
    match node:
        case Num(value=v):
            return repr(v)
        case Str(value=s):
            return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
        case Bool(value=b):
            return "true" if b else "false"
        case Dur(ns=ns):
            return format_duration(ns)
        case ListLit(items=items):
            return "[" + ", ".join(unparse(i) for i in items) + "]"
        case Name(name=name):
            return name
        case Tag(key=key):
            return f"tags[{unparse(Str(0, key))}]"
        case MetricRef(name=name):
            return f"metric({unparse(Str(0, name))})"
        case Call(fn=fn, args=args):
            return f"{fn}(" + ", ".join(unparse(a) for a in args) + ")"
        case Unary(op=op, operand=operand):
            return f"({op} {unparse(operand)})" if op == "not" else f"(-{unparse(operand)})"
        case Binary(op=op, left=left, right=right):
            text = "not in" if op == "notin" else op
            return f"({unparse(left)} {text} {unparse(right)})"
    raise TypeError(f"not an expression node: {node!r}")
