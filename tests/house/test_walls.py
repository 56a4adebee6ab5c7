"""The house's walls: which top-level package may import which, and no import circle.

Read from the code's own ``import`` statements (the ``ast``, nothing is
imported), so the test sees what a reader sees:

- ``rules/`` imports nothing of ours (the pure engine);
- ``devices/`` imports only ``rules/`` (how devices speak: the reading model,
  formats, conventions, serial framing and profiles);
- ``simulators/`` imports nothing of ours but ``wire/`` (they speak only MQTT, and
  the Sparkplug edge-node simulator encodes its payloads with the shared schema);
- ``wire/`` (generated payload schemas) imports nothing of ours;
- ``gateway/http/`` never imports the app or the wiring (it reads a narrow
  model and acts through controls);
- no module imports another inside a function to dodge any of this;
- and no set of modules imports each other in a circle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("wire", "rules", "devices", "gateway", "simulators")
ALLOWED = {
    "wire": set(),
    "rules": set(),
    "devices": {"rules", "wire"},
    "simulators": {"wire"},
    "gateway": {"rules", "devices", "simulators", "wire"},
}


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = modules()


def _resolve(name: str) -> str | None:
    """The module of ours that ``name`` (a module or a name inside one) refers to."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def imports(module: str) -> Iterator[tuple[str, int, bool]]:
    """(imported module of ours, line, inside a function) for each import in ``module``."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]

    def visit(node: ast.AST, nested: bool) -> Iterator[tuple[str, int, bool]]:
        for child in ast.iter_child_nodes(node):
            inner = nested or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.Import):
                for alias in child.names:
                    target = _resolve(alias.name)
                    if target:
                        yield target, child.lineno, nested
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                for alias in child.names:
                    target = _resolve(f"{base}.{alias.name}") or _resolve(base)
                    if target:
                        yield target, child.lineno, nested
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                continue  # annotations only: not an import at run time
            yield from visit(child, inner)

    yield from visit(tree, False)


def _is_type_checking(test: ast.expr) -> bool:
    return isinstance(test, ast.Name) and test.id == "TYPE_CHECKING"


GRAPH = {m: {(t, line, nested) for t, line, nested in imports(m) if t != m} for m in MODULES}


def test_each_package_imports_only_the_floors_below_it() -> None:
    wrong = [
        f"{MODULES[m].relative_to(ROOT)}:{line}: {m} imports {t}"
        for m, targets in GRAPH.items()
        for t, line, _ in targets
        if t.split(".")[0] != m.split(".")[0] and t.split(".")[0] not in ALLOWED[m.split(".")[0]]
    ]
    assert wrong == []


def test_the_http_layer_never_reaches_into_the_app() -> None:
    wrong = [
        f"{MODULES[m].relative_to(ROOT)}:{line}: {m} imports {t}"
        for m, targets in GRAPH.items()
        if m.startswith("gateway.http")
        for t, line, _ in targets
        if t in ("gateway.app", "gateway.wiring", "gateway.cli") or t.startswith("gateway.cli.")
    ]
    assert wrong == []


def test_no_import_hides_inside_a_function() -> None:
    hidden = [
        f"{MODULES[m].relative_to(ROOT)}:{line}: {m} imports {t} inside a function"
        for m, targets in GRAPH.items()
        for t, line, nested in targets
        if nested and (m, t) not in DEFERRED
    ]
    assert hidden == []


# Imports deferred on purpose, each with its reason (none of them dodges a circle).
DEFERRED = {
    # `outpost run` alone needs the runtime (aiohttp and the rest, ~0.2 s to import):
    # every other verb and `outpost --help` start without it.
    ("gateway.cli", "gateway.app"),
}


def test_no_import_circle() -> None:
    edges = {m: {t for t, _, _ in targets} for m, targets in GRAPH.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []
    counter = 0

    def connect(v: str) -> None:  # Tarjan's strongly connected components
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for module in sorted(edges):
        if module not in index:
            connect(module)
    assert circles == []


def test_the_walls_test_sees_the_imports_it_must() -> None:
    # A wall test that reads nothing passes everything: check it reads known arrows
    # of each import form (absolute module, a name from a module, a submodule by name).
    pipeline = {t for t, _, _ in GRAPH["gateway.ingest.pipeline"]}
    assert pipeline >= {"devices.model", "devices.decoding"}
    assert "rules.events" in {t for t, _, _ in GRAPH["rules"]}
    assert "gateway.status.views" in {t for t, _, _ in GRAPH["gateway.http.server"]}
    assert "gateway.app" in {t for t, _, nested in GRAPH["gateway.cli"] if nested}
