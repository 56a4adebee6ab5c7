"""The docs point at things that exist: relative links resolve, and every file a doc names
in backquotes (``gateway/app.py``, ``devices/formats/``) is in the tree."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
NAMED = re.compile(r"`((?:gateway|devices|rules|simulators|tests|docs|benchmarks)/[\w./-]*)`")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_relative_links_resolve(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    missing = [
        target
        for target in LINK.findall(text)
        if "://" not in target
        and not target.startswith("mailto:")
        and not (doc.parent / target).exists()
    ]
    assert missing == []


@pytest.mark.parametrize("doc", [d for d in DOCS if d.parent.name == "docs"], ids=lambda p: p.name)
def test_every_file_a_doc_names_exists(doc: Path) -> None:
    named = NAMED.findall(doc.read_text(encoding="utf-8"))
    assert named, "the architecture pages name the files they describe"
    assert [n for n in named if not (ROOT / n).exists()] == []
