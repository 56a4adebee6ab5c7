"""Times the gateway writes into JSON (dead letters, JSON log lines) are RFC 3339, UTC,
with milliseconds and ``Z``: the rules engine's format, cut (not rounded) to the millisecond."""

from __future__ import annotations

import json
import logging

import pytest

from gateway import deadletter
from gateway.deadletter import DeadLetters
from gateway.logsetup import JsonFormatter
from gateway.metrics import Metrics


def test_a_dead_letter_carries_its_time_in_milliseconds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(deadletter.time, "time_ns", lambda: 1_795_773_600_123_999_999)
    sent: list[bytes] = []
    DeadLetters(lambda topic, payload: sent.append(payload), Metrics()).send("t", b"x", "bad")
    assert json.loads(sent[0])["ts"] == "2026-11-27T10:00:00.123Z"


def test_a_json_log_line_carries_its_time_in_milliseconds() -> None:
    record = logging.LogRecord("outpost.mqtt", logging.INFO, __file__, 1, "up", None, None)
    record.created = 1_795_773_600.123  # stored as …600.12299990654: still .123
    assert json.loads(JsonFormatter().format(record))["ts"] == "2026-11-27T10:00:00.123Z"
