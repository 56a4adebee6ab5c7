"""Every event as one sentence: what ``outpost events``, the log and the log notifier say.

The journal keeps each event as the world saw it (a JSON object, see
:mod:`gateway.journal`); people read it here, as a line that says what
happened to which device and why, e.g.::

    fan-1: set speed=100 (rule greenhouse_hot on gh-1; command 7ef34d18871c4097)
    alert greenhouse_hot FIRING on gh-1: gh-1 is 31.5 °C (warning)

Values are written as a person would type them (``speed=100``, ``mode=auto``,
``on=true``), never as Python or JSON structures, and a field the event does not
have is left out rather than shown as ``None``. :data:`KINDS` names every kind
of journal entry; a kind it does not know is still one line of ``key=value``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

Payload = Mapping[str, Any]


def value_text(value: Any) -> str:
    """A value as a person types it: ``100``, ``21.5``, ``true``, ``auto``, ``"two words"``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, int):
        return str(value)
    if value is None:
        return "nothing"
    if isinstance(value, Mapping):
        return settings_text(value)
    if isinstance(value, (list, tuple)):
        return ", ".join(value_text(v) for v in value)
    text = str(value)
    if text == "" or any(c.isspace() or c in "=,;\"'" for c in text):
        return json.dumps(text, ensure_ascii=False)
    return text


def settings_text(settings: Any) -> str:
    """``{"speed": 100, "mode": "auto"}`` → ``speed=100 mode=auto``."""
    if not isinstance(settings, Mapping) or not settings:
        return "nothing"
    return " ".join(f"{key}={value_text(value)}" for key, value in settings.items())


def _name(value: Any, unknown: str = "?") -> str:
    return unknown if value in (None, "") else str(value)


def alert_sentence(event: Payload) -> str:
    """``alert greenhouse_hot FIRING on gh-1: gh-1 is 31.5 °C (warning)``."""
    state = _name(event.get("state"), "changed").upper()
    text = f"alert {_name(event.get('rule'))} {state} on {_name(event.get('device'))}"
    message = event.get("message")
    value = event.get("value")
    if message:
        text += f": {message}"
    elif value is not None:
        text += f": value {value_text(value)}"
    if event.get("severity"):
        text += f" ({event['severity']})"
    return text


def _origin(p: Payload) -> str:
    """Who asked for a command: a rule (and the device whose alert it was), or a person."""
    source, rule = p.get("origin"), p.get("rule")
    if source == "api":
        return "sent by hand"
    on = f" on {p['alert_device']}" if p.get("alert_device") else ""
    if source == "journal":
        return f"resent after a restart, rule {_name(rule)}{on}"
    return f"rule {_name(rule)}{on}" if rule else _name(source, "unknown origin")


def _command_id(p: Payload) -> str:
    return f"; command {p['id']}" if p.get("id") else ""


def _device(p: Payload) -> str:
    return _name(p.get("device"), "(no device)")


# Reasons a command is refused whose detail text names the device id in a form meant for
# a log line (quotes, escapes); the sentence says it plainly instead.
_REFUSED_PLAINLY = {
    "bad_device": "the device id cannot be part of an MQTT topic",
}


def _refused(p: Payload) -> str:
    reason = _REFUSED_PLAINLY.get(str(p.get("reason")), p.get("detail") or p.get("reason"))
    return (
        f"{_device(p)}: REFUSED {settings_text(p.get('set'))}: {_name(reason, 'refused')} "
        f"({_origin(p)})"
    )


def _sent(p: Payload) -> str:
    return f"{_device(p)}: set {settings_text(p.get('set'))} ({_origin(p)}{_command_id(p)})"


def _deferred(p: Payload) -> str:
    wait = p.get("send_in_s")
    when = f"in {wait:.1f} s" if isinstance(wait, (int, float)) else "later"
    return (
        f"{_device(p)}: {settings_text(p.get('set'))} waits for min_interval, sent {when} "
        f"({_origin(p)})"
    )


def _retry(p: Payload) -> str:
    return (
        f"{_device(p)}: no answer yet, sending {settings_text(p.get('set'))} again "
        f"(retry {_name(p.get('attempt'))}{_command_id(p)})"
    )


def _acked(p: Payload) -> str:
    settings = settings_text(p.get("set"))
    return f"{_device(p)}: acknowledged {settings} ({_origin(p)}{_command_id(p)})"


def _rejected(p: Payload) -> str:
    why = f": {p['reason']}" if p.get("reason") else ""
    return (
        f"{_device(p)}: REJECTED {settings_text(p.get('set'))}{why} ({_origin(p)}{_command_id(p)})"
    )


def _timed_out(p: Payload) -> str:
    attempts = p.get("attempts")
    after = f" after {attempts} attempts" if attempts else ""
    return (
        f"{_device(p)}: never acknowledged {settings_text(p.get('set'))}{after} "
        f"({_origin(p)}{_command_id(p)})"
    )


def _superseded(p: Payload) -> str:
    return (
        f"{_device(p)}: {settings_text(p.get('set'))} replaced by a newer command "
        f"({_origin(p)}{_command_id(p)})"
    )


def _inhibited(p: Payload) -> str:
    return (
        f"{alert_sentence(p)}; not notified and no action run: the gateway could not hear "
        "during its window"
    )


_OUTCOMES = {
    "sent": "sent",
    "failed": "FAILED to send",
    "dropped": "dropped (its queue was full)",
    "silenced": "silenced",
}


def _notification(p: Payload) -> str:
    alert = (
        f"{_name(p.get('rule'))} {_name(p.get('state'), 'changed').upper()} "
        f"on {_name(p.get('device'))}"
    )
    outcome = str(p.get("outcome"))
    text = f"notifier {_name(p.get('notifier'))}: {_OUTCOMES.get(outcome, outcome)} {alert}"
    details = []
    if p.get("attempts"):
        details.append(f"{p['attempts']} attempt{'s' if p['attempts'] != 1 else ''}")
    if p.get("error"):
        details.append(str(p["error"]))
    if p.get("silence") is not None:
        details.append(f"silence {p['silence']}")
    return text + (f" ({', '.join(details)})" if details else "")


def _rules_reload(p: Payload) -> str:
    if p.get("outcome") != "refused":
        return (
            f"rules reloaded: {_name(p.get('running'))} running ({_name(p.get('kept'))} kept, "
            f"{_name(p.get('changed'))} changed, {_name(p.get('added'))} added, "
            f"{_name(p.get('removed'))} removed)"
        )
    errors = [str(e) for e in p.get("errors") or []]
    more = max(0, len(errors) - 1) + int(p.get("more_errors") or 0)
    first = errors[0] if errors else "no reason given"
    return (
        f"rules reload REFUSED, the previous {_name(p.get('running'))} rules keep running: "
        f"{first}" + (f" (and {more} more)" if more else "")
    )


KINDS: dict[str, Callable[[Payload], str]] = {
    "alert": alert_sentence,
    "alert_inhibited": _inhibited,
    "command": _sent,
    "command_refused": _refused,
    "command_deferred": _deferred,
    "command_retry": _retry,
    "command_acked": _acked,
    "command_rejected": _rejected,
    "command_timed_out": _timed_out,
    "command_superseded": _superseded,
    "notification": _notification,
    "rules_reload": _rules_reload,
}
"""Each kind of journal entry, and how it reads."""


def describe(kind: str, payload: Payload) -> str:
    """One journal entry (or any event of a known kind) as one line."""
    render = KINDS.get(kind)
    if render is not None:
        return render(payload)
    fields = " ".join(f"{k}={value_text(v)}" for k, v in payload.items() if v not in (None, ""))
    return f"{kind}: {fields}" if fields else kind
