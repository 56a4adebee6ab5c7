"""The dead-letter topic: one shape for input that cannot become a stored reading.

In the running gateway every refusal goes through :class:`DeadLetters`: published
in the shape :func:`encode` builds, counted by reason
(``outpost_deadletters_total``) and logged — at most once per reason per minute,
with how many were suppressed, so a flood of garbage cannot flood the log too.
The serial bridge, which publishes on its own connection, uses :func:`encode`.

Whatever refuses it — a decoder, the line-protocol encoder, InfluxDB, the serial
framing — it is published to :data:`TOPIC` as this JSON object (``outpost
schema`` documents it as ``event-deadletter``)::

    {"topic": "sensors/gh-1/temperature", "payload": "NaN", "reason": "non_finite",
     "detail": "non-finite number 'NaN'", "ts": "2026-11-27T10:00:00.123Z"}

``topic`` is where the input came from, ``reason`` a short stable token,
``detail`` a human explanation (may be empty). Payloads over :data:`MAX_PAYLOAD`
bytes are cut (``"truncated": true`` and the original ``"size"``); payloads
that are not UTF-8 are sent base64-encoded (``"encoding": "base64"``).
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Callable

from gateway.logsetup import Throttled
from gateway.metrics import Metrics
from rules import rfc3339

TOPIC = "outpost/deadletter"
MAX_PAYLOAD = 4096


def encode(topic: str, payload: bytes, reason: str, detail: str, ts_ns: int) -> bytes:
    """The dead-letter message body for ``payload`` refused at ``ts_ns`` (ns since the epoch)."""
    event: dict[str, object] = {
        "topic": topic,
        "reason": reason,
        "detail": detail,
        "ts": rfc3339(ts_ns),
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
    return json.dumps(event, ensure_ascii=False).encode("utf-8")


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
        body = encode(topic, payload, reason, detail, time.time_ns())
        try:
            self._publish(TOPIC, body)
        except Exception:  # the broker may be gone; the counter and the log still tell
            log.debug("could not publish dead letter", exc_info=True)
        self._log.log(
            reason, logging.WARNING, "dead letter %s from %s: %s", reason, topic[:120], detail[:200]
        )
