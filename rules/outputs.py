"""What a rule's transitions put out: one :class:`AlertEvent` per transition and
the :class:`CommandRequest` of each action it runs (message and target templates
rendered with the reading's fields, tags and labels).
"""

from __future__ import annotations

from collections.abc import Mapping

from rules.events import AlertEvent, CommandRequest, Output
from rules.model import Rule, Value
from rules.state import AlertRecord, AlertState, Transition

__all__ = ["emit"]

_F = AlertState.FIRING
_TEXT = {s: s.value for s in AlertState}  # enum .value is a slow descriptor in 3.11


def emit(
    rule: Rule,
    device: str,
    new: AlertRecord,
    transitions: list[Transition],
    value: Value | None,
    tags: Mapping[str, str],
    metric: str,
    out: list[Output],
) -> None:
    """Append the events and commands of ``transitions`` (``new`` is the record after them)."""
    labels = dict(tags)
    labels.update(rule.labels)
    for tr in transitions:
        st = tr.state
        fields = {
            "device": device,
            "value": value,
            "rule": rule.name,
            "severity": rule.severity,
            "metric": metric,
            "state": _TEXT[st],
        }
        out.append(
            AlertEvent(
                rule=rule.name,
                device=device,
                state=st,
                at=tr.at,
                severity=rule.severity,
                value=value,
                message=rule.message.render(fields, tags, labels),
                labels=labels,
                active_at=new.active_at,
                fired_at=new.fired_at if st in (_F, AlertState.RESOLVED) else None,
                resolved_at=new.resolved_at if st is AlertState.RESOLVED else None,
                trace_id=new.trace_id,
                metric=metric,
                repeat=tr.repeat,
            )
        )
        if tr.run is None:
            continue
        actions = rule.actions if tr.run == "actions" else rule.on_resolved
        for action in actions:
            out.append(
                CommandRequest(
                    rule=rule.name,
                    device=device,
                    target=action.device.render(fields, tags, labels),
                    settings=dict(action.settings),
                    trigger=st,
                    at=tr.at,
                    trace_id=new.trace_id,
                )
            )
