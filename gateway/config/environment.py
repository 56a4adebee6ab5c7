"""``${VAR}`` and ``${VAR:-default}`` in config strings: the one definition of that syntax.

The config loader expands references in every string of the YAML it loaded
through :func:`rules.yamlsrc.load_yaml` (so a missing variable is reported at
its ``file:line:col``); the security checks ask which part of a value is
written in the file itself rather than taken from the environment. ``$$`` is
a literal ``$`` in both.
"""

from __future__ import annotations

import re
from typing import Any

from rules.yamlsrc import LocDict, LocList, Mark, Problem

_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def substitute(node: Any, env: dict[str, str], problems: list[Problem]) -> None:
    """Replace ``${VAR}``/``${VAR:-default}`` in every string value, in place."""
    if isinstance(node, LocDict):
        items = [(k, node.locs[k]) for k in node]
    elif isinstance(node, LocList):
        items = list(enumerate(node.locs))
    else:
        return
    for key, mark in items:
        value = node[key]
        if isinstance(value, str) and "$" in value:
            node[key] = _expand(value, env, mark, problems)
        else:
            substitute(value, env, problems)


def _expand(text: str, env: dict[str, str], mark: Mark, problems: list[Problem]) -> str:
    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        var, default = match.group(1), match.group(2)
        if var in env:
            return env[var]
        if default is not None:
            return default
        problems.append(
            Problem(
                mark,
                f"environment variable {var} is not set (write ${{{var}:-default}} to allow that)",
            )
        )
        return ""

    return _VAR.sub(one, text)


def written_in_file(text: str) -> str:
    """``text`` without the references whose whole value comes from the environment.

    ``${VAR}`` and ``${VAR:-}`` go; a non-empty default (``${VAR:-abc}``) and
    ``$$`` stay, because their text is in the file.
    """

    def one(match: re.Match[str]) -> str:
        from_env = match.group(1) is not None and not match.group(2)
        return "" if from_env else match.group(0)

    return _VAR.sub(one, text)
