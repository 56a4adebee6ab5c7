"""The dead-letter topic in the running gateway: every refusal goes through :class:`DeadLetters`.

Each refused message or point is published in the one shape of
:mod:`devices.deadletter` (``{"topic", "payload", "reason", "detail", "ts"}``,
with ``encoding``/``truncated``/``size`` when the payload needs them), counted
by reason (``outpost_deadletters_total``) and logged — at most once per reason
per minute, with how many were suppressed, so a flood of garbage cannot flood
the log too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from devices import deadletter
from gateway.logsetup import Throttled
from gateway.metrics import Metrics

LOG_EVERY = 60.0

log = logging.getLogger("outpost.deadletter")

Publish = Callable[[str, bytes], None]


class DeadLetters:
    def __init__(
        self, publish: Publish, metrics: Metrics, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._publish = publish
        self._metrics = metrics
        self._log = Throttled(log, LOG_EVERY, clock)

    def send(self, topic: str, payload: bytes, reason: str, detail: str = "") -> None:
        """Publish, count and (throttled) log one refused message or point."""
        self._metrics.deadletters.labels(reason).inc()
        body = deadletter.encode(topic, payload, reason, detail, time.time_ns())
        try:
            self._publish(deadletter.TOPIC, body)
        except Exception:  # the broker may be gone; the counter and the log still tell
            log.debug("could not publish dead letter", exc_info=True)
        self._log.log(
            reason, logging.WARNING, "dead letter %s from %s: %s", reason, topic[:120], detail[:200]
        )
