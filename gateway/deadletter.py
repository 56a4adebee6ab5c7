"""The dead-letter topic: where input that cannot become a stored reading goes.

Every refused message or point is published to ``outpost/deadletter`` as
``{"topic", "payload", "reason", "ts", "detail"}``, counted by reason, and
logged — at most once per reason per minute, with how many were suppressed,
so a flood of garbage cannot flood the log too. Payloads over 4 KiB are
truncated (``"truncated": true`` and the original ``"size"``); payloads that
are not UTF-8 are sent base64-encoded (``"encoding": "base64"``).
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from gateway.logsetup import Throttled
from gateway.metrics import Metrics

TOPIC = "outpost/deadletter"
MAX_PAYLOAD = 4096
LOG_EVERY = 60.0

log = logging.getLogger("outpost.deadletter")

Publish = Callable[[str, bytes], None]


def rfc3339_ms(ns: int) -> str:
    """``2026-11-27T10:00:00.123Z`` (DESIGN.md §5: every time, millisecond precision)."""
    moment = datetime.fromtimestamp(ns // 1_000_000_000, UTC)
    millis = (ns // 1_000_000) % 1000
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{millis:03d}Z"


class DeadLetters:
    def __init__(
        self, publish: Publish, metrics: Metrics, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._publish = publish
        self._metrics = metrics
        self._log = Throttled(log, LOG_EVERY, clock)

    def send(self, topic: str, payload: bytes, reason: str, detail: str = "") -> None:
        self._metrics.deadletters.labels(reason).inc()
        event: dict[str, object] = {
            "topic": topic,
            "reason": reason,
            "detail": detail,
            "ts": rfc3339_ms(time.time_ns()),
        }
        body = payload[:MAX_PAYLOAD]
        try:
            event["payload"] = body.decode("utf-8")
        except UnicodeDecodeError:
            event["payload"] = base64.b64encode(body).decode("ascii")
            event["encoding"] = "base64"
        if len(payload) > MAX_PAYLOAD:
            event["truncated"] = True
            event["size"] = len(payload)
        try:
            self._publish(TOPIC, json.dumps(event, ensure_ascii=False).encode("utf-8"))
        except Exception:  # the broker may be gone; the counter and the log still tell
            log.debug("could not publish dead letter", exc_info=True)
        self._log.log(
            reason, logging.WARNING, "dead letter %s from %s: %s", reason, topic[:120], detail[:200]
        )
