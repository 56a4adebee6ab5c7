"""Message templates: ``"{device} is {value:.1f} °C in {tags.zone}"``.

``str.format`` is not used on user templates: its field syntax reaches
attributes and items (``{value.__class__}``), a classic injection. Templates are
split once with :class:`string.Formatter`'s parser, field names are checked
against a fixed list at load time, and at run time each field is formatted on
its own — a format spec that does not fit the value (``{value:.1f}`` on a
string, or on ``null`` for ``absent``) falls back to the plain text of the
value instead of failing, because an alert must never be lost to its message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from string import Formatter
from typing import Any

FIELDS = ("device", "value", "rule", "severity", "metric", "state")
PREFIXED = ("tags.", "labels.")


class TemplateError(ValueError):
    """A template field the language does not know, or a malformed template."""


@dataclass(frozen=True, slots=True)
class Template:
    """A parsed template: literal text and (field, spec, conversion) parts."""

    source: str
    parts: tuple[tuple[str, str | None, str, str | None], ...]
    # The parts as render() walks them, decided once rather than per alert:
    # (literal, where, key, default, spec, conversion, plain) where ``where``
    # indexes (fields, tags, labels), -1 for a literal alone.
    steps: tuple[tuple[str, int, str, str | None, str, str | None, bool], ...] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        steps = []
        for literal, name, spec, conversion in self.parts:
            if name is None:
                where, key, default = -1, "", None
            elif name.startswith("tags."):
                where, key, default = 1, name[5:], ""
            elif name.startswith("labels."):
                where, key, default = 2, name[7:], ""
            else:
                where, key, default = 0, name, None
            plain = not spec and conversion is None
            steps.append((literal, where, key, default, spec, conversion, plain))
        object.__setattr__(self, "steps", tuple(steps))

    def render(
        self, fields: Mapping[str, Any], tags: Mapping[str, str], labels: Mapping[str, str]
    ) -> str:
        out: list[str] = []
        append = out.append
        sources = (fields, tags, labels)
        for literal, where, key, default, spec, conversion, plain in self.steps:
            if literal:
                append(literal)
            if where < 0:
                continue
            value = sources[where].get(key, default)
            if plain and type(value) is str:
                append(value)
            elif plain and type(value) is float:
                append(str(value))  # what format(value, "") gives, without the call
            else:
                append(_format(value, spec, conversion))
        return "".join(out)


def _format(value: Any, spec: str, conversion: str | None) -> str:
    if value is None:
        return "null"
    if conversion == "r":
        value = repr(value)
    elif conversion == "s":
        value = str(value)
    try:
        return format(value, spec)
    except (ValueError, TypeError):
        return str(value)


def parse_template(source: str) -> Template:
    """Check and split a template; raise :class:`TemplateError` naming the bad field."""
    parts: list[tuple[str, str | None, str, str | None]] = []
    try:
        parsed = list(Formatter().parse(source))
    except ValueError as exc:
        raise TemplateError(
            f"bad message template: {exc} (write {{{{ and }}}} for braces)"
        ) from None
    for literal, name, spec, conversion in parsed:
        if name is None:
            parts.append((literal, None, "", None))
            continue
        if name == "" or name.isdigit():
            raise TemplateError("message fields need a name, e.g. {device}")
        known = name in FIELDS or (
            name.startswith(PREFIXED) and name.split(".", 1)[1] != "" and "[" not in name
        )
        if not known:
            raise TemplateError(
                f"unknown message field {{{name}}} (known: {', '.join(FIELDS)}, tags.NAME, "
                "labels.NAME)"
            )
        if spec and ("{" in spec or "}" in spec):
            raise TemplateError(f"nested fields are not allowed in {{{name}:{spec}}}")
        if any(int(n) > 64 for n in re.findall(r"\d+", spec or "")):
            # A width like {value:999999999} would build a gigabyte string per alert.
            raise TemplateError(f"format widths above 64 are not allowed in {{{name}:{spec}}}")
        if conversion not in (None, "s", "r"):
            raise TemplateError(f"unknown conversion !{conversion} in {{{name}}}")
        parts.append((literal, name, spec or "", conversion))
    return Template(source, tuple(parts))
