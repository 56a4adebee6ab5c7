"""One throttled logger for lines that can repeat thousands of times a second."""

from __future__ import annotations

import logging

import pytest

from gateway.deadletter import DeadLetters
from gateway.logsetup import Throttled
from gateway.metrics import Metrics

LOGGER = "outpost.test.throttled"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


def test_a_key_is_logged_once_per_interval_then_says_how_many_were_held_back(caplog) -> None:
    clock = Clock()
    throttled = Throttled(logging.getLogger(LOGGER), 60.0, clock)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        for n in range(5):
            throttled.log("bad_json", logging.WARNING, "dead letter %d", n)
        clock.now += 60.0
        throttled.log("bad_json", logging.WARNING, "dead letter %d", 5)
        throttled.log("bad_json", logging.WARNING, "dead letter %d", 6)
        clock.now += 60.0
        throttled.log("bad_json", logging.WARNING, "dead letter %d", 7)
    assert _lines(caplog) == [
        "dead letter 0",
        "dead letter 5 (and 4 more since the last report)",
        "dead letter 7 (and 1 more since the last report)",
    ]


def test_keys_are_throttled_independently(caplog) -> None:
    throttled = Throttled(logging.getLogger(LOGGER), 60.0, Clock())
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        throttled.log("a", logging.WARNING, "first a")
        throttled.log("b", logging.ERROR, "first b")
        throttled.log("a", logging.WARNING, "second a")
    assert _lines(caplog) == ["first a", "first b"]
    assert [r.levelno for r in caplog.records if r.name == LOGGER] == [
        logging.WARNING,
        logging.ERROR,
    ]


def test_a_held_back_line_can_stand_for_many_things(caplog) -> None:
    clock = Clock()
    throttled = Throttled(logging.getLogger(LOGGER), 10.0, clock)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        throttled.log("full", logging.WARNING, "dropped %d", 3, count=3)
        throttled.log("full", logging.WARNING, "dropped %d", 40, count=40)
        clock.now += 10.0
        throttled.log("full", logging.WARNING, "dropped %d", 2, count=2)
    assert _lines(caplog) == ["dropped 3", "dropped 2 (and 40 more since the last report)"]


def test_dead_letters_are_logged_once_per_reason_per_minute(caplog) -> None:
    clock = Clock()
    letters = DeadLetters(lambda topic, payload: None, Metrics(), clock)
    with caplog.at_level(logging.WARNING, logger="outpost.deadletter"):
        for _ in range(3):
            letters.send("sensors/gh-1", b"{", "bad_json", "not JSON")
        letters.send("sensors/gh-1/t", b"NaN", "non_finite", "non-finite number")
        clock.now += 60.0
        letters.send("sensors/gh-1", b"{", "bad_json", "not JSON")
    lines = [r.getMessage() for r in caplog.records if r.name == "outpost.deadletter"]
    assert lines == [
        "dead letter bad_json from sensors/gh-1: not JSON",
        "dead letter non_finite from sensors/gh-1/t: non-finite number",
        "dead letter bad_json from sensors/gh-1: not JSON (and 2 more since the last report)",
    ]
