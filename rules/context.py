"""What one evaluation of a compiled expression sees, and how it says "undefined".

Shared by the compiler (which builds closures over a :class:`Context`), the
fused closures and the engine (which fills one :class:`Context` per reading).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rules.windows import Series


class Undefined(Exception):
    """Raised inside an evaluation that met an undefined value (caught by the engine)."""


UNDEFINED = Undefined()
_MISSING: Any = object()


class Context:
    """What one evaluation can see. The engine reuses one instance per reading."""

    __slots__ = ("device", "metrics", "now", "series", "tags", "value")

    def __init__(self) -> None:
        self.value: Any = _MISSING  # _MISSING on tick evaluations (absent rules)
        self.device = ""
        self.tags: Any = {}
        self.now = 0
        self.series: Series | None = None  # the matched (device, metric)
        self.metrics: dict[str, Series] = {}  # every series of this device


Fn = Callable[[Context], Any]
