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
that are not UTF-8 are sent base64-encoded (``"encoding": "base64"``). A lone
surrogate in the topic or the detail (text that cannot be UTF-8) is written as its
JSON escape, ``\\ud800``.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Callable

from gateway.logsetup import FirstTraceback, Throttled, printable
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
    # backslashreplace turns a lone surrogate into "\udXXX", its escape inside a JSON string.
    return json.dumps(event, ensure_ascii=False).encode("utf-8", "backslashreplace")


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
        self._tracebacks = FirstTraceback(log)

    def send(self, topic: str, payload: bytes, reason: str, detail: str = "") -> None:
        """Publish, count and (throttled) log one refused message or point."""
        self._metrics.deadletters.labels(reason).inc()
        body = encode(topic, payload, reason, detail, time.time_ns())
        try:
            self._publish(TOPIC, body)
        except Exception:  # the broker may be gone; the counter and the log still tell
            log.debug("could not publish dead letter", exc_info=True)
        self._log.log(
            reason,
            logging.WARNING,
            "dead letter %s from %s: %s",
            reason,
            printable(topic, 120),
            printable(detail),
        )

    def failed(self, topic: str, payload: bytes, exc: Exception) -> None:
        """Dead-letter a message whose handling raised ``exc``, which nothing expected.

        Reason ``internal_error`` with the exception's class in the detail; its traceback
        is logged the first time that exception comes from that line of code, not for
        every message that meets it again.
        """
        self._tracebacks.log(
            exc,
            "unexpected %s while handling a message from %s; the message is "
            "dead-lettered (internal_error) and ingest goes on",
            type(exc).__name__,
            printable(topic, 120),
        )
        self.send(topic, payload, "internal_error", f"{type(exc).__name__}: {exc}"[:500])
