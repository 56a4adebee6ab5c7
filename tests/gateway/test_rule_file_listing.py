"""Listing rule files: what ``glob.glob`` finds, except that an unlistable folder is an error
(gateway/actions/rules_runtime.py ``rule_files``)."""

from __future__ import annotations

import glob
import os

import pytest

from gateway.actions.rules_runtime import load_rule_files, rule_files
from rules import SourceError

TREE = [
    "rules.d/a.yaml", "rules.d/b.yml", "rules.d/.hidden.yaml", "rules.d/notes.txt",
    "sites/north/x.yaml", "sites/south/y.yaml", "sites/readme.yaml", "top.yaml",
]
PATTERNS = [
    "rules.d/*.yaml", "rules.d/*.y*ml", "rules.d/.*", "rules.d/[ab].y?ml", "sites/*/*.yaml",
    "s*/n*/x.yaml", "*.yaml", "top.yaml", "missing/*.yaml", "missing.yaml", "rules.d/*",
]


@pytest.fixture
def tree(tmp_path, monkeypatch):
    for name in TREE:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("rules: []\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("pattern", PATTERNS)
def test_the_same_files_as_glob(tree, pattern) -> None:
    for form in (pattern, str(tree / pattern)):
        assert [str(p) for p in rule_files([form])] == sorted(glob.glob(form)), form


def test_a_folder_that_is_a_file_is_an_error_not_no_files(tree) -> None:
    os.rename("rules.d", "rules.old")
    with open("rules.d", "w") as f:
        f.write("x\n")
    assert glob.glob("rules.d/*.yaml") == []  # what the reload used to take for "no rules"
    with pytest.raises(NotADirectoryError):
        rule_files(["rules.d/*.yaml"])
    with pytest.raises(SourceError) as caught:
        load_rule_files(["rules.d/*.yaml"])
    assert str(caught.value) == "rules.d:1:1: cannot list rule files: Not a directory"


def test_every_file_that_cannot_be_read_is_reported(tree) -> None:
    os.mkfifo("rules.d/c.yaml")
    (tree / "rules.d" / "d.yaml").write_text("rules: [\n")
    with pytest.raises(SourceError) as caught:
        load_rule_files(["rules.d/*.yaml"])
    assert [str(p) for p in caught.value.problems] == [
        "rules.d/c.yaml:1:1: cannot read: not a regular file",
        "rules.d/d.yaml:2:1: YAML: expected the node content, but found '<stream end>'",
    ]
