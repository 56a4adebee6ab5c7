"""YAML loading that remembers where every value came from.

Config and rule files are validated after loading, and every error must point
at ``file:line:col``. PyYAML's composer keeps a mark on each node; this module
turns nodes into plain dicts, lists and scalars while keeping those marks in
``LocDict.locs`` / ``LocList.locs``, so a validator can map an error path
(``("rules", 3, "when")``) back to a position with :func:`locate`.

Two deliberate departures from YAML 1.1, both because they bite sensor users:
``on/off/yes/no`` stay strings (a command value ``ON`` must not become
``True``; only ``true``/``false`` are booleans), and a duplicate key is an
error instead of silently keeping the last one.

Every Outpost YAML file (``outpost.yaml``, rule files, rule test files) is
loaded here, so the limits that keep a hostile or broken file from stopping
the gateway live here too. Each is refused with ``file:line:col: message``
before it costs anything:

- more than :data:`MAX_BYTES` of text (parsing is linear in the size, so the
  size bounds the time and memory a file can take);
- collections nested deeper than :data:`MAX_DEPTH` (the composer recurses per
  level: a few thousand ``[`` would exhaust Python's stack);
- aliases (``*name``): each one is a copy of its anchor, so nine lines of
  aliases to aliases expand to a billion values ("billion laughs"), and an
  alias inside its own anchor is a loop. Anchors alone are harmless and allowed.

Any other failure of the YAML library (a bad character, an explicit tag its
constructor cannot build, like ``!!int abc`` or the date ``2024-13-45``) is a
:class:`SourceError` at its position too: nothing else leaves this module.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.reader import ReaderError

MAX_BYTES = 1024 * 1024
"""Largest YAML file (UTF-8 bytes) any loader accepts."""
MAX_DEPTH = 32
"""Deepest nesting of mappings and sequences (the document's top level is 1)."""


@dataclass(frozen=True, slots=True)
class Mark:
    """A position in a source file; ``line`` and ``col`` count from 1."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True, slots=True)
class Problem:
    """One error found in a source file."""

    mark: Mark
    message: str

    def __str__(self) -> str:
        return f"{self.mark}: {self.message}"


class SourceError(Exception):
    """Every problem found in one or more source files, in file order."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.mark.file, p.mark.line, p.mark.col))
        super().__init__("\n".join(str(p) for p in self.problems))


class LocDict(dict[str, Any]):
    """A mapping from YAML, with the mark of itself and of each key's value."""

    mark: Mark
    key_locs: dict[str, Mark]
    locs: dict[str, Mark]


class LocList(list[Any]):
    """A sequence from YAML, with the mark of itself and of each item."""

    mark: Mark
    locs: list[Mark]


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2-style booleans (only true/false)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


class _BoundedLoader(_Loader):
    """Composes nodes with :data:`MAX_DEPTH` and without aliases (see the module doc)."""

    def __init__(self, text: str, file: str) -> None:
        super().__init__(text)
        self._file = file
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent):
            anchor = event.anchor
            raise self._refuse(event, f"aliases (*{anchor}) are not accepted: write the value out")
        if not isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            return super().compose_node(parent, index)
        if self._depth >= MAX_DEPTH:
            raise self._refuse(event, f"nested deeper than {MAX_DEPTH} levels")
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def _refuse(self, event: yaml.Event, message: str) -> SourceError:
        at = event.start_mark
        where = Mark(self._file, at.line + 1, at.column + 1) if at else Mark(self._file, 1, 1)
        return SourceError([Problem(where, f"YAML: {message}")])


def _mark(file: str, node: yaml.Node) -> Mark:
    return Mark(file, node.start_mark.line + 1, node.start_mark.column + 1)


def _yaml_problem(exc: yaml.YAMLError, file: str, text: str) -> Problem:
    """The YAML library's error as one problem at its position."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        where = Mark(file, mark.line + 1, mark.column + 1) if mark else Mark(file, 1, 1)
        return Problem(where, f"YAML: {exc.problem or exc.context}")
    if isinstance(exc, ReaderError):
        line = text.count("\n", 0, exc.position) + 1
        col = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        char = exc.character if isinstance(exc.character, int) else ord(exc.character)
        return Problem(Mark(file, line, col), f"YAML: {exc.reason} (character #x{char:04x})")
    return Problem(Mark(file, 1, 1), f"YAML: {exc}")


def _scalar(file: str, node: yaml.Node, loader: _Loader, problems: list[Problem]) -> Any:
    try:
        return loader.construct_object(node, deep=True)
    except yaml.YAMLError:
        raise
    except Exception:  # the library's constructors fail with whatever the conversion raised
        problems.append(
            Problem(_mark(file, node), f"YAML: cannot read {_shown(node)} as {node.tag}")
        )
        return None


def _shown(node: yaml.Node) -> str:
    text = repr(node.value) if isinstance(node, yaml.ScalarNode) else "this value"
    return text if len(text) <= 40 else text[:37] + "..."


def _convert(file: str, node: yaml.Node, loader: _Loader, problems: list[Problem]) -> Any:
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)  # resolves YAML merge keys (<<)
        out = LocDict()
        out.mark, out.key_locs, out.locs = _mark(file, node), {}, {}
        for key_node, value_node in node.value:
            key = _scalar(file, key_node, loader, problems)
            if not isinstance(key, str):
                key = str(key)
            if key in out:
                problems.append(
                    Problem(
                        _mark(file, key_node),
                        f"duplicate key {key!r} (first at line {out.key_locs[key].line})",
                    )
                )
                continue
            out.key_locs[key] = _mark(file, key_node)
            out.locs[key] = _mark(file, value_node)
            out[key] = _convert(file, value_node, loader, problems)
        return out
    if isinstance(node, yaml.SequenceNode):
        seq = LocList()
        seq.mark, seq.locs = _mark(file, node), []
        for item in node.value:
            seq.locs.append(_mark(file, item))
            seq.append(_convert(file, item, loader, problems))
        return seq
    return _scalar(file, node, loader, problems)


def load_yaml(text: str, file: str) -> Any:
    """Parse one YAML document; raise :class:`SourceError` on anything it cannot load.

    That is: syntax errors, duplicate keys, values the library cannot build,
    and the limits of the module doc. An empty document loads as ``None``.
    """
    if len(text) > MAX_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise SourceError([Problem(Mark(file, 1, 1), too_large())])
    try:
        loader = _BoundedLoader(text, file)  # reads the whole text: refuses unprintable characters
        try:
            node = loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise SourceError([_yaml_problem(exc, file, text)]) from None
    if node is None:
        return None
    problems: list[Problem] = []
    try:
        data = _convert(file, node, _Loader(""), problems)
    except yaml.YAMLError as exc:
        raise SourceError([_yaml_problem(exc, file, text)]) from None
    if problems:
        raise SourceError(problems)
    return data


def too_large() -> str:
    """The message for a file over :data:`MAX_BYTES` (also used by the readers of files)."""
    return f"file is larger than {MAX_BYTES / 2**20:g} MiB, the limit for a YAML file"


def locate(data: Any, path: tuple[int | str, ...], default: Mark) -> Mark:
    """The mark of the deepest node on ``path`` that exists (for error messages).

    A path into a missing key points at the mapping that lacks it.
    """
    mark = getattr(data, "mark", default)
    node = data
    for step in path:
        # Two branches on purpose: mypy narrows ``step`` per branch, not through an `or`.
        if isinstance(node, LocDict) and isinstance(step, str) and step in node:  # noqa: SIM114
            mark = node.locs[step]
            node = node[step]
        elif isinstance(node, LocList) and isinstance(step, int) and 0 <= step < len(node):
            mark = node.locs[step]
            node = node[step]
        else:
            break
    return mark


def locate_key(data: Any, path: tuple[int | str, ...], default: Mark) -> Mark:
    """Like :func:`locate`, but the mark of the last step's *key* (for "unknown key")."""
    if not path:
        return locate(data, path, default)
    parent = data
    for step in path[:-1]:
        if isinstance(parent, LocDict) and isinstance(step, str) and step in parent:  # noqa: SIM114
            parent = parent[step]
        elif isinstance(parent, LocList) and isinstance(step, int) and 0 <= step < len(parent):
            parent = parent[step]
        else:
            return locate(data, path, default)
    last = path[-1]
    if isinstance(parent, LocDict) and isinstance(last, str) and last in parent.key_locs:
        return parent.key_locs[last]
    return locate(data, path, default)
