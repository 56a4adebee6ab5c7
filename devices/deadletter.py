"""The dead-letter message: one shape for input that cannot become a stored reading.

Whatever refuses it — a decoder, the line-protocol encoder, InfluxDB — it is
published to :data:`TOPIC` as the JSON object :func:`encode` builds (``outpost
schema event-deadletter`` documents it). It lives beside the reading model so
that a publisher with no gateway around it can use the same shape::

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
