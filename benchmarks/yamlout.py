"""YAML for the configs and rule files the benchmarks and tests write.

Outpost refuses YAML aliases, and PyYAML writes one whenever the same object appears
twice in what it dumps; :func:`dump` writes every value out instead.
"""

from __future__ import annotations

from typing import Any

import yaml


class _NoAliases(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump(data: Any, *, sort_keys: bool = False) -> str:
    return yaml.dump(data, Dumper=_NoAliases, sort_keys=sort_keys)
