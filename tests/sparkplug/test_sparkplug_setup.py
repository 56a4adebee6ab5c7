"""Sparkplug's config keys and module layout: bad values fail at start with their line;
the state machine imports on its own (it sits below the convention registry)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.config import load_config
from gateway.config.loader import SourceError

ROOT = Path(__file__).resolve().parents[2]


def test_sparkplug_keys_have_defaults_and_refuse_bad_values_with_their_line(tmp_path):
    path = tmp_path / "outpost.yaml"
    path.write_text('inputs:\n  - {topic: "spBv1.0/#", format: sparkplug}\n', encoding="utf-8")
    config = load_config(str(path), environ={}).config
    assert config.sparkplug.host_id == "outpost" and config.sparkplug.rebirth_timeout == 5.0
    path.write_text("sparkplug:\n  host_id: a/b\n  rebirth_timeout: soon\n", encoding="utf-8")
    with pytest.raises(SourceError) as info:
        load_config(str(path), environ={})
    problems = [str(p) for p in info.value.problems]
    assert any(":2:" in p and "host_id must be one topic level" in p for p in problems), problems
    assert any(":3:" in p and "rebirth_timeout" in p for p in problems), problems


@pytest.mark.parametrize(
    "module",
    [
        "devices.sparkplug.host",
        "devices.sparkplug.session",
        "devices.conventions.sparkplug",
        "simulators.sparkplug",
    ],
)
def test_each_sparkplug_module_imports_first_in_a_fresh_interpreter(module):
    done = subprocess.run(
        [sys.executable, "-c", f"import {module}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
