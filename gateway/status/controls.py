"""What the HTTP API may change in a running gateway: commands, silences, a rule reload.

The HTTP layer holds a :class:`Controls` and nothing else that can act; each
method is one operator action with the same checks as its CLI verb (a command
goes through the dispatcher's policy, exactly as a rule's would).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.actions.commands import Origin
from gateway.actions.dispatcher import CommandDispatcher
from gateway.actions.rules_runtime import RulesRuntime
from gateway.actions.silences import Silences


class Controls:
    def __init__(
        self, dispatcher: CommandDispatcher, silences: Silences, rules: RulesRuntime
    ) -> None:
        self._dispatcher = dispatcher
        self._silences = silences
        self._rules = rules

    def send_command(self, device: str, settings: Mapping[str, Any]) -> tuple[str, str]:
        """``(outcome, detail)``: ``refused`` with the reason, else the command id."""
        outcome, detail = self._dispatcher.submit(device, settings, Origin("api"))
        return str(outcome), detail

    def commands(self) -> list[dict[str, Any]]:
        """Per commandable device: what is in flight or deferred."""
        return self._dispatcher.state()

    def silences(self) -> list[dict[str, Any]]:
        return [s.to_dict() for s in self._silences.active()]

    def add_silence(
        self, rule: str, device: str, seconds: float, *, comment: str, created_by: str
    ) -> dict[str, Any]:
        """Raises ValueError for a bad duration or pattern."""
        silence = self._silences.add(rule, device, seconds, comment=comment, created_by=created_by)
        return silence.to_dict()

    def remove_silence(self, silence_id: int) -> bool:
        return self._silences.remove(silence_id)

    async def reload_rules(self) -> bool:
        """Re-read the rule files now; False (old rules kept) if they are invalid."""
        return await self._rules.reload()
