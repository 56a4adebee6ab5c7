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
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml


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


def _mark(file: str, node: yaml.Node) -> Mark:
    return Mark(file, node.start_mark.line + 1, node.start_mark.column + 1)


def _convert(file: str, node: yaml.Node, loader: _Loader, problems: list[Problem]) -> Any:
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)  # resolves YAML merge keys (<<)
        out = LocDict()
        out.mark, out.key_locs, out.locs = _mark(file, node), {}, {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
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
    return loader.construct_object(node, deep=True)


def load_yaml(text: str, file: str) -> Any:
    """Parse one YAML document; raise :class:`SourceError` on syntax errors or duplicate keys.

    An empty document loads as ``None``.
    """
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = Mark(file, mark.line + 1, mark.column + 1) if mark else Mark(file, 1, 1)
        raise SourceError([Problem(where, f"YAML: {exc.problem or exc.context}")]) from None
    except yaml.YAMLError as exc:
        raise SourceError([Problem(Mark(file, 1, 1), f"YAML: {exc}")]) from None
    finally:
        loader.dispose()
    if node is None:
        return None
    problems: list[Problem] = []
    try:
        data = _convert(file, node, _Loader(""), problems)
    except yaml.YAMLError as exc:
        raise SourceError([Problem(Mark(file, 1, 1), f"YAML: {exc}")]) from None
    if problems:
        raise SourceError(problems)
    return data


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
