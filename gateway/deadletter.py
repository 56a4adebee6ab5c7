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

from gateway.metrics import Metrics
from rules import rfc3339

TOPIC = "outpost/deadletter"
MAX_PAYLOAD = 4096
LOG_EVERY = 60.0

log = logging.getLogger("outpost.deadletter")

Publish = Callable[[str, bytes], None]


class DeadLetters:
    def __init__(
        self, publish: Publish, metrics: Metrics, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._publish = publish
        self._metrics = metrics
        self._clock = clock
        self._last_log: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def send(self, topic: str, payload: bytes, reason: str, detail: str = "") -> None:
        self._metrics.deadletters.labels(reason).inc()
        event: dict[str, object] = {
            "topic": topic,
            "reason": reason,
            "detail": detail,
            "ts": rfc3339(time.time_ns()),
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
        self._log(reason, topic, detail)

    def _log(self, reason: str, topic: str, detail: str) -> None:
        now = self._clock()
        last = self._last_log.get(reason)
        if last is not None and now - last < LOG_EVERY:
            self._suppressed[reason] = self._suppressed.get(reason, 0) + 1
            return
        self._last_log[reason] = now
        more = self._suppressed.pop(reason, 0)
        extra = f" (and {more} more since the last report)" if more else ""
        log.warning("dead letter %s from %s: %s%s", reason, topic[:120], detail[:200], extra)
