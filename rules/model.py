"""What a loaded rule is, and what the engine consumes.

:class:`ReadingLike` is the structural protocol for readings: the engine reads
``device, metric, value, ts, tags`` (and ``topic``/``trace_id`` when present,
through ``getattr``), so ``devices.model.Reading`` fits without ``rules/``
importing the gateway.

A :class:`Rule` is immutable and fully checked; its :attr:`Rule.fingerprint`
is a hash of its normalized definition (expressions re-printed from their tree,
durations in ns, keys sorted — so reformatting a file changes nothing), used by
hot reload and state restore to decide whether old alert state still applies.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from rules.compiler import Compiled
from rules.state import Timing
from rules.template import Template
from rules.yamlsrc import Mark

Value = float | bool | str
Setting = int | float | bool | str  # command values keep YAML's int/float distinction
SEVERITIES = ("info", "warning", "critical")


class ReadingLike(Protocol):
    """A reading as the engine needs it (``devices.model.Reading`` satisfies it).

    Optional attributes read with ``getattr``: ``topic: str``, ``trace_id: str``.
    """

    @property
    def device(self) -> str: ...
    @property
    def metric(self) -> str: ...
    @property
    def value(self) -> Value: ...
    @property
    def ts(self) -> int: ...  # ns since the epoch, UTC
    @property
    def tags(self) -> Mapping[str, str]: ...


@dataclass(frozen=True, slots=True)
class Match:
    """Which readings a rule looks at; ``None``/empty means "any"."""

    metric: str | None = None
    device: str | None = None  # glob: * and ?, case-sensitive
    tags: tuple[tuple[str, str], ...] = ()
    topic: str | None = None  # MQTT filter with + and #


@dataclass(frozen=True, slots=True)
class CommandAction:
    """``command: {device: fan-1, set: {speed: 100}}``; ``device`` may be a template.

    ``mark`` is where the device is named and ``setting_marks`` where each setting is,
    in the order of ``settings``, so a caller that checks the command against its
    devices can point at the line.
    """

    device: Template
    settings: tuple[tuple[str, Setting], ...]
    mark: Mark = field(default=Mark("<rules>", 1, 1), compare=False)
    setting_marks: tuple[Mark, ...] = field(default=(), compare=False)


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    match: Match
    when: Compiled
    clear: Compiled | None
    timing: Timing
    severity: str
    message: Template
    labels: tuple[tuple[str, str], ...]
    actions: tuple[CommandAction, ...]
    on_resolved: tuple[CommandAction, ...]
    stale_after: int
    description: str = ""
    mark: Mark = field(default=Mark("<rules>", 1, 1), compare=False)
    fingerprint: str = field(default="", compare=False)

    @property
    def is_absence(self) -> bool:
        """Rules with ``absent()`` are also evaluated by ticks, not only by readings."""
        return bool(self.when.absent or (self.clear and self.clear.absent))

    def normalized(self) -> dict[str, Any]:
        """The definition with formatting removed (what the fingerprint hashes)."""

        def actions(items: tuple[CommandAction, ...]) -> list[Any]:
            return [[a.device.source, [list(kv) for kv in a.settings]] for a in items]

        return {
            "name": self.name,
            "match": [
                self.match.metric,
                self.match.device,
                [list(t) for t in self.match.tags],
                self.match.topic,
            ],
            "when": self.when.normalized,
            "clear": self.clear.normalized if self.clear else None,
            "for": self.timing.for_,
            "keep_firing_for": self.timing.keep_firing_for,
            "repeat": self.timing.repeat,
            "severity": self.severity,
            "message": self.message.source,
            "labels": [list(kv) for kv in self.labels],
            "actions": actions(self.actions),
            "on_resolved": actions(self.on_resolved),
            "stale_after": self.stale_after,
        }


def fingerprint(rule: Rule) -> str:
    """A stable hash of :meth:`Rule.normalized` (16 hex digits)."""
    text = json.dumps(rule.normalized(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class RuleSet:
    """All rules loaded from one or more files, names unique, in file order."""

    rules: tuple[Rule, ...] = ()

    def by_name(self) -> dict[str, Rule]:
        return {r.name: r for r in self.rules}
