"""What the verbs share: loading the config named by ``-c FILE``, reporting problems one
line each, ``--json``, and how to write an ``outpost`` command the user can run."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

from gateway.config import LoadedConfig, load_config
from rules.yamlsrc import Problem, SourceError


def load_config_or_report(args: argparse.Namespace) -> LoadedConfig | None:
    """The config of ``-c`` (or ``./outpost.yaml``, or the defaults).

    When it is invalid, its errors (``FILE:LINE:COL: …``) go to stderr and the
    result is None; the verb then exits with its own code for an invalid config.
    """
    try:
        return load_config(args.config)
    except SourceError as exc:
        if args.config and not Path(args.config).exists():
            hint = f" (`{command_name()} init -c {args.config}` writes a starter one)"
            report([Problem(p.mark, p.message + hint) for p in exc.problems])
        else:
            report(exc.problems)
        return None


def problem_line(problem: Problem) -> str:
    """``file:line:col: message``; ``file: message`` for a problem of no line (defaults)."""
    if problem.mark.line <= 0:
        return f"{problem.mark.file}: {problem.message}"
    return str(problem)


def report(problems: Iterable[Problem], out: TextIO | None = None) -> None:
    """Every problem on a line of its own (stderr by default)."""
    for problem in problems:
        print(problem_line(problem), file=out or sys.stderr)


def problem_json(problem: Problem) -> dict[str, Any]:
    mark = problem.mark
    return {"file": mark.file, "line": mark.line, "col": mark.col, "message": problem.message}


def add_json_flag(parser: argparse.ArgumentParser, what: str = "the result") -> None:
    parser.add_argument("--json", action="store_true", help=f"print {what} as JSON (for scripts)")


def print_json(value: Any, out: TextIO | None = None) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False), file=out or sys.stdout)


def command_name() -> str:
    """How the user can run ``outpost`` again, for the hints the CLI prints.

    ``outpost`` when that is what the shell finds; else the path this run was
    started by (``.venv/bin/outpost`` when the virtual environment's ``bin`` is not
    on PATH), or ``python -m gateway`` with the interpreter that runs it.
    """
    invoked = sys.argv[0] if sys.argv and sys.argv[0] else "outpost"
    if Path(invoked).name == "__main__.py":
        return f"{_shortest(sys.executable)} -m gateway"
    found = shutil.which(Path(invoked).name)
    if found and Path(invoked).exists() and os.path.samefile(found, invoked):
        return Path(invoked).name
    return _shortest(invoked)


def _shortest(path: str) -> str:
    """``path`` relative to the working directory when it is below it, else as it is."""
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return path
    if relative.startswith(".."):
        return path
    return relative if "/" in relative else f"./{relative}"  # a bare name would be looked up
