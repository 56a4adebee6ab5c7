"""Every dead letter has the one documented shape (``outpost schema event-deadletter``)."""

from __future__ import annotations

import base64
import json

import pytest

from gateway import deadletter
from gateway.cli.schema import DeadLetter
from gateway.deadletter import DeadLetters
from gateway.metrics import Metrics

TS = 1_795_755_841_123_456_789


def _sent(payload: bytes, reason: str = "bad_json", detail: str = "") -> tuple[str, dict]:
    letters: list[tuple[str, bytes]] = []
    DeadLetters(lambda topic, body: letters.append((topic, body)), Metrics()).send(
        "sensors/gh-1", payload, reason, detail
    )
    [(topic, body)] = letters
    return topic, json.loads(body)


@pytest.mark.parametrize("payload", [b"{", b"\xff\xfe\x00", b"x" * 5000, "é".encode()])
def test_a_dead_letter_matches_the_documented_schema(payload: bytes) -> None:
    topic, event = _sent(payload, detail="not JSON")
    assert topic == "outpost/deadletter"
    DeadLetter.model_validate(event)
    assert event["topic"] == "sensors/gh-1" and event["reason"] == "bad_json"
    assert event["detail"] == "not JSON"


def test_a_binary_payload_is_sent_base64_encoded() -> None:
    _, event = _sent(b"\xff\xfe\x00")
    assert event["encoding"] == "base64"
    assert base64.b64decode(event["payload"]) == b"\xff\xfe\x00"


def test_a_large_payload_is_cut_and_says_its_size() -> None:
    _, event = _sent(b"x" * 5000)
    assert event["truncated"] is True and event["size"] == 5000
    assert len(event["payload"]) == deadletter.MAX_PAYLOAD


def test_the_time_has_milliseconds_in_utc() -> None:
    event = json.loads(deadletter.encode("serial:/dev/ttyUSB0", b"?", "bad_line", "", TS))
    assert event["ts"] == "2026-11-27T05:04:01.123Z"
    DeadLetter.model_validate(event)


def test_dead_letters_are_counted_by_reason() -> None:
    metrics = Metrics()
    letters = DeadLetters(lambda topic, body: None, metrics)
    letters.send("sensors/gh-1", b"{", "bad_json")
    letters.send("sensors/gh-1", b"{", "bad_json")
    assert (
        metrics.registry.get_sample_value("outpost_deadletters_total", {"reason": "bad_json"}) == 2
    )


def test_a_lone_surrogate_in_the_topic_or_detail_is_sent_as_its_json_escape() -> None:
    letters: list[bytes] = []
    DeadLetters(lambda topic, body: letters.append(body), Metrics()).send(
        "sensors/\udcff", b"{}", "invalid_text", "device id 'gh-\ud800'"
    )
    [body] = letters
    body.decode("utf-8")  # valid UTF-8 on the wire
    event = json.loads(body)
    assert event["topic"] == "sensors/\udcff" and event["detail"] == "device id 'gh-\ud800'"


def test_an_unexpected_exception_is_dead_lettered_and_its_traceback_logged_once(caplog) -> None:
    metrics = Metrics()
    letters: list[dict] = []
    dead = DeadLetters(lambda topic, body: letters.append(json.loads(body)), metrics)

    def bug(key: str) -> None:
        {}[key]

    for key in ("a", "b\nforged"):
        try:
            bug(key)
        except KeyError as exc:
            dead.failed("sensors/gh-1", b"x", exc)
    assert [(d["reason"], d["detail"]) for d in letters] == [
        ("internal_error", "KeyError: 'a'"),
        ("internal_error", "KeyError: 'b\\nforged'"),
    ]
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 1  # the same line of code: once
    assert metrics.registry.get_sample_value(
        "outpost_deadletters_total", {"reason": "internal_error"}
    ) == 2
