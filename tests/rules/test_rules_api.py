"""The public surface of the rules package, and its purity constraints."""

from __future__ import annotations

import ast
from pathlib import Path

import rules

PACKAGE = Path(rules.__file__).parent


def test_all_names_exist_and_are_sorted() -> None:
    assert rules.__all__ == sorted(rules.__all__)
    for name in rules.__all__:
        assert hasattr(rules, name), name


def test_rules_package_imports_no_gateway_io_or_clock() -> None:
    forbidden_modules = {
        "gateway",
        "devices",
        "simulators",
        "asyncio",
        "socket",
        "os",
        "subprocess",
        "pathlib",
        "time",
    }
    for path in PACKAGE.glob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in ("open", "eval", "exec", "compile"), path
                continue
            else:
                continue
            for name in names:
                assert name.split(".")[0] not in forbidden_modules, (path.name, name)
