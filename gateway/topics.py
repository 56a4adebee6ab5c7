"""Topic templates: ``sensors/{device}/{metric}`` ⇄ filter ``sensors/+/+`` + captured fields.

A ``{name}`` placeholder fills one whole topic level and becomes a ``+`` in
the subscription; ``+`` stays a level whose content is ignored; ``#`` (last
level only) ignores the rest. Matching a received topic back to its fields is
a split and an index lookup; :class:`TopicRouter` caches the result per topic,
because a gateway sees the same few thousand topics over and over.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Generic, TypeVar

_PLACEHOLDER = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]*)\}$")

T = TypeVar("T")


class TemplateError(ValueError):
    pass


class TopicTemplate:
    """A parsed topic template."""

    __slots__ = ("_count", "_levels", "_multi", "fields", "filter", "template")

    def __init__(self, template: str) -> None:
        if not template:
            raise TemplateError("empty topic template")
        if "\x00" in template:
            raise TemplateError("topic template contains NUL")
        self.template = template
        levels = template.split("/")
        parts: list[str] = []
        self._levels: list[tuple[int, str | None, str | None]] = []  # (index, field, literal)
        self.fields: list[str] = []
        self._multi = False
        for i, level in enumerate(levels):
            match = _PLACEHOLDER.match(level)
            if match:
                name = match.group(1)
                if name in self.fields:
                    raise TemplateError(f"{template}: {{{name}}} appears twice")
                self.fields.append(name)
                self._levels.append((i, name, None))
                parts.append("+")
            elif level == "#":
                if i != len(levels) - 1:
                    raise TemplateError(f"{template}: # must be the last level")
                self._multi = True
                parts.append("#")
            elif level == "+":
                parts.append("+")
            elif "{" in level or "}" in level:
                raise TemplateError(f"{template}: a {{placeholder}} must fill a whole level")
            elif "+" in level or "#" in level:
                raise TemplateError(f"{template}: + and # must fill a whole level")
            else:
                self._levels.append((i, None, level))
                parts.append(level)
        self.filter = "/".join(parts)
        self._count = len(levels)

    def match(self, topic: str) -> dict[str, str] | None:
        """The captured fields if ``topic`` matches, else None."""
        levels = topic.split("/")
        if self._multi:
            if len(levels) < self._count - 1:
                return None
        elif len(levels) != self._count:
            return None
        fields: dict[str, str] = {}
        for index, name, literal in self._levels:
            level = levels[index]
            if name is not None:
                if not level:
                    return None  # an empty device or metric is not a match
                fields[name] = level
            elif level != literal:
                return None
        # MQTT: wildcards never match topics starting with $ (e.g. $SYS) at the first level.
        if topic.startswith("$") and not self.template.startswith("$"):
            return None
        return fields

    def render(self, **fields: str) -> str:
        """The concrete topic for the given fields (``+``/``#`` levels are not renderable)."""
        out = []
        for level in self.template.split("/"):
            match = _PLACEHOLDER.match(level)
            out.append(fields[match.group(1)] if match else level)
        return "/".join(out)

    def __repr__(self) -> str:
        return f"TopicTemplate({self.template!r})"


class TopicRouter(Generic[T]):
    """Finds the first route (in config order) whose template matches a topic.

    Results are cached; the cache is bounded (cleared when full) so a flood of
    distinct topics cannot grow memory without limit.
    """

    def __init__(self, routes: Sequence[tuple[TopicTemplate, T]], cache_size: int = 50_000) -> None:
        self._routes = list(routes)
        self._cache: dict[str, tuple[T, dict[str, str]] | None] = {}
        self._cache_size = cache_size

    def route(self, topic: str) -> tuple[T, dict[str, str]] | None:
        try:
            return self._cache[topic]
        except KeyError:
            pass
        found: tuple[T, dict[str, str]] | None = None
        for template, target in self._routes:
            fields = template.match(topic)
            if fields is not None:
                found = (target, fields)
                break
        if len(self._cache) >= self._cache_size:
            self._cache.clear()
        self._cache[topic] = found
        return found
