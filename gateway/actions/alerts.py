"""Where every alert event goes: MQTT, the journal, InfluxDB and the notifiers.

Rule alerts (from :mod:`gateway.actions.rules_runtime`) and the gateway's own
alerts (``command_failed``, built by :func:`system_alert`) take the same path,
so they look the same to every consumer: published on
``outpost/alerts/{rule}/{device}`` at QoS 1, appended to the journal, written
to InfluxDB as ``outpost_alerts`` (for Grafana annotations) and handed to the
notifiers.

Inhibition: while the gateway was not running, or not connected to the
broker, it heard nothing — so when it comes back every ``absent()`` rule would
fire for every device at once. An absence alert whose window overlaps such a
deaf period is *inhibited*: still published and journaled (the state is true
as far as the gateway knows) but not notified and its actions not run. Each
inhibition is journaled and counted.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from gateway.actions.sentences import alert_sentence
from gateway.influx.lineproto import LineEncoder, Unwritable
from gateway.journal import Journal
from gateway.logsetup import printable
from gateway.metrics import Metrics
from rules.events import AlertEvent
from rules.model import Value
from rules.state import AlertState

log = logging.getLogger("outpost.alerts")

Publish = Callable[[str, bytes, int], None]
WriteLine = Callable[[str], None]
Notify = Callable[[Mapping[str, Any]], None]


def system_alert(
    *,
    rule: str,
    device: str,
    firing: bool,
    at_ns: int,
    severity: str,
    value: Value | None,
    message: str,
    labels: Mapping[str, str] | None = None,
    trace_id: str | None = None,
) -> dict[str, Any]:
    """One of the gateway's own alerts (``command_failed``, …) as the alert event payload.

    It fires or resolves at ``at_ns`` and has no pending phase, so it becomes active,
    fires and resolves at that one instant; the payload has the same fields as a rule's.
    """
    return AlertEvent(
        rule=rule,
        device=device,
        state=AlertState.FIRING if firing else AlertState.RESOLVED,
        at=at_ns,
        severity=severity,
        value=value,
        message=message,
        labels=dict(labels or {}),
        active_at=at_ns if firing else None,
        fired_at=at_ns if firing else None,
        resolved_at=None if firing else at_ns,
        trace_id=trace_id or "",
    ).to_dict()


class DeafPeriods:
    """When the gateway could not hear readings: before it started, and broker outages."""

    def __init__(self, clock: Callable[[], int] = time.time_ns, keep: int = 32) -> None:
        self._clock = clock
        self._periods: deque[tuple[int, int | None]] = deque(maxlen=keep)

    def deaf(self, since: int | None = None) -> None:
        """The gateway stopped hearing (``since``: default now)."""
        if self._periods and self._periods[-1][1] is None:
            return
        self._periods.append((since if since is not None else self._clock(), None))

    def hearing(self) -> None:
        """The gateway hears again (connected to the broker)."""
        if self._periods and self._periods[-1][1] is None:
            start, _ = self._periods.pop()
            self._periods.append((start, self._clock()))

    def overlaps(self, start: int, end: int) -> bool:
        for deaf_start, deaf_end in self._periods:
            if deaf_start < end and (deaf_end is None or deaf_end > start):
                return True
        return False


class AlertBus:
    def __init__(
        self,
        *,
        publish: Publish,
        journal: Journal,
        write_line: WriteLine,
        notify: Notify,
        metrics: Metrics,
        deaf: DeafPeriods,
        encoder: LineEncoder | None = None,
    ) -> None:
        self._publish = publish
        self._journal = journal
        self._write_line = write_line
        self._notify = notify
        self._metrics = metrics
        self._encoder = encoder or LineEncoder()
        self.deaf = deaf

    def inhibited(self, event: Mapping[str, Any], at: int, absent_window: int | None) -> bool:
        """True when an absence alert's window overlaps a deaf period (see module doc)."""
        if absent_window is None or event.get("state") != "firing":
            return False
        if not self.deaf.overlaps(at - absent_window, at):
            return False
        self._metrics.inhibited.inc()
        self._journal.append(
            "alert_inhibited",
            dict(event),
            rule=str(event["rule"]),
            device=str(event["device"]),
            trace_id=event.get("trace_id"),
        )
        log.info(
            "alert %s on %s inhibited: the gateway could not hear during its window",
            event["rule"],
            printable(event["device"], 120),
        )
        return True

    def emit(
        self,
        event: Mapping[str, Any],
        at: int,
        *,
        state: dict[str, Any] | None = None,
        notify: bool = True,
    ) -> None:
        rule, device, status = str(event["rule"]), str(event["device"]), str(event["state"])
        self._metrics.alert_events.labels(status).inc()
        self._journal.append(
            "alert",
            dict(event),
            rule=rule,
            device=device,
            trace_id=event.get("trace_id"),
            state=state,
            ts=at,
        )
        topic = f"outpost/alerts/{rule}/{device}"
        try:
            self._publish(topic, _json(event), 1)
        except ValueError as exc:  # a topic paho refuses (wildcards in a device id)
            log.error("cannot publish alert %s/%s: %s", rule, printable(device, 120), exc)
        fields: dict[str, float | bool | str] = {"message": str(event.get("message") or "")}
        value = event.get("value")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            fields["value"] = float(value)
        with contextlib.suppress(Unwritable):
            self._write_line(
                self._encoder.encode_point(
                    "outpost_alerts",
                    {
                        "rule": rule,
                        "device": device,
                        "state": status,
                        "severity": str(event.get("severity") or ""),
                    },
                    fields,
                    at,
                )
            )
        if notify:
            self._notify(event)
        level = logging.WARNING if status == "firing" else logging.INFO
        log.log(level, "%s", printable(alert_sentence(event), 2000))


def _json(event: Mapping[str, Any]) -> bytes:
    import json

    return json.dumps(dict(event), ensure_ascii=False, separators=(",", ":")).encode()
