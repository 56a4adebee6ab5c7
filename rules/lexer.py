"""Tokenizer for rule expressions (``value > 30 and rate(5m) > 0``).

Durations (``5m``, ``1h30m``) are tokens of their own, so ``5m`` never reads as
"5 times m". Python keywords that have no meaning here (``lambda``, ``import``,
``for``, ``if``…) are refused at this stage with a message that names them, so
a user who tries a comprehension or a lambda learns at once that the language
does not have them rather than getting a puzzling "expected ]".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from rules.durations import MAX_DURATION, UNIT_NAMES, DurationError, parse_duration

TokenKind = Literal["num", "dur", "str", "name", "op", "eof"]

MAX_EXPRESSION_LENGTH = 4096


class ExprError(Exception):
    """An expression the language refuses; ``pos`` is the 0-based offset of the culprit."""

    def __init__(self, message: str, pos: int) -> None:
        super().__init__(message)
        self.message = message
        self.pos = pos


@dataclass(frozen=True, slots=True)
class Token:
    kind: TokenKind
    text: str
    pos: int
    number: float = 0.0  # for num and dur (ns)


KEYWORDS = frozenset({"and", "or", "not", "in", "true", "false"})

# Python keywords and builtins-turned-syntax a user might try; none exist here.
FORBIDDEN_WORDS = frozenset(
    {
        "lambda",
        "import",
        "from",
        "for",
        "while",
        "if",
        "else",
        "elif",
        "is",
        "def",
        "class",
        "return",
        "yield",
        "await",
        "async",
        "with",
        "as",
        "global",
        "nonlocal",
        "del",
        "pass",
        "raise",
        "try",
        "except",
        "finally",
        "assert",
        "break",
        "continue",
        "None",
        "True",
        "False",
        "exec",
        "eval",
        "__import__",
    }
)

# No space inside a duration token: in an expression ``5 m`` is a number and a name.
_DURATION = re.compile(rf"(?:\d+(?:\.\d+)?(?:{UNIT_NAMES}))+(?![A-Za-z0-9_])")
_NUMBER = re.compile(r"\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?![A-Za-z0-9_])")
_BAD_NUMBER = re.compile(r"\d[A-Za-z0-9_.]*")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SPACE = re.compile(r"\s+")
_OPS = ("==", "!=", "<=", ">=", "<", ">", "+", "-", "*", "/", "%", "(", ")", "[", "]", ",", ".")
_HINTS = {
    "**": "'**' (power) is not allowed",
    "//": "'//' is not allowed; use / and round()",
    "&&": "use 'and' instead of '&&'",
    "||": "use 'or' instead of '||'",
    "=": "use '==' to compare ('=' is not an operator)",
    "!": "use 'not' instead of '!'",
    "&": "bitwise operators are not allowed; use 'and'",
    "|": "bitwise operators are not allowed; use 'or'",
    "^": "'^' is not allowed",
    "~": "'~' is not allowed",
    "@": "'@' is not allowed",
    ":": "':' is not allowed (no slices, lambdas or dicts)",
    "{": "'{' is not allowed (no dicts or sets)",
    "}": "'}' is not allowed",
    ";": "';' is not allowed: an expression is a single condition",
}
_ESCAPES = {"\\": "\\", '"': '"', "'": "'", "n": "\n", "t": "\t"}


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens ending with an ``eof`` token; raise :class:`ExprError`."""
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise ExprError(f"expression longer than {MAX_EXPRESSION_LENGTH} characters", 0)
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if m := _SPACE.match(text, i):
            i = m.end()
            continue
        if ch.isdigit():
            i = _number(text, i, tokens)
            continue
        if m := _NAME.match(text, i):
            word = m.group()
            if word in FORBIDDEN_WORDS:
                raise ExprError(
                    f"{word!r} is not allowed: rule expressions have no lambdas, "
                    "comprehensions, imports, conditionals or statements",
                    i,
                )
            if word.startswith("__"):
                raise ExprError(f"names starting with '__' are not allowed ({word!r})", i)
            tokens.append(Token("name", word, i))
            i = m.end()
            continue
        if ch in "\"'":
            i = _string(text, i, tokens)
            continue
        two = text[i : i + 2]
        if two in _HINTS:
            raise ExprError(_HINTS[two], i)
        if two in _OPS:
            tokens.append(Token("op", two, i))
            i += 2
            continue
        if ch in _OPS:
            tokens.append(Token("op", ch, i))
            i += 1
            continue
        if ch in _HINTS:
            raise ExprError(_HINTS[ch], i)
        raise ExprError(f"unexpected character {ch!r}", i)
    tokens.append(Token("eof", "", n))
    return tokens


def _number(text: str, i: int, tokens: list[Token]) -> int:
    if m := _DURATION.match(text, i):
        try:
            ns = parse_duration(m.group()) if len(m.group()) < 40 else MAX_DURATION + 1
        except DurationError as exc:
            raise ExprError(str(exc), i) from None
        if ns > MAX_DURATION:
            raise ExprError(f"duration {m.group()!r} is longer than 366d", i)
        if ns == 0:
            raise ExprError(f"duration {m.group()!r} must be longer than zero", i)
        tokens.append(Token("dur", m.group(), i, float(ns)))
        return m.end()
    if m := _NUMBER.match(text, i):
        # Numbers are floats, never Python ints: an int literal could make
        # ``*`` build an arbitrarily large integer.
        tokens.append(Token("num", m.group(), i, float(m.group())))
        return m.end()
    bad = _BAD_NUMBER.match(text, i)
    word = bad.group() if bad else text[i]
    raise ExprError(f"bad number or duration {word!r} (durations: 30s, 5m, 1h, 1d, 500ms)", i)


def _string(text: str, i: int, tokens: list[Token]) -> int:
    quote, j = text[i], i + 1
    out: list[str] = []
    while j < len(text):
        ch = text[j]
        if ch == quote:
            tokens.append(Token("str", "".join(out), i))
            return j + 1
        if ch == "\\":
            nxt = text[j + 1 : j + 2]
            if nxt not in _ESCAPES:
                raise ExprError(f"unknown escape '\\{nxt}' in string", j)
            out.append(_ESCAPES[nxt])
            j += 2
            continue
        if ch == "\n":
            break
        out.append(ch)
        j += 1
    raise ExprError("unterminated string", i)
