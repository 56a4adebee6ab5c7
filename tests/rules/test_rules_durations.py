"""rules.durations: the one duration parser of rule files, outpost.yaml, CLI options and the API."""

from __future__ import annotations

import re

import pytest

from rules.durations import (
    DAY,
    DURATION_PATTERN,
    MINUTE,
    SECOND,
    WEEK,
    DurationError,
    format_duration,
    parse_duration,
)


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("0", 0),
        ("30s", 30 * SECOND),
        ("1h30m", 90 * MINUTE),
        ("0.1s", 100_000_000),
        ("500ms", SECOND // 2),
        ("30 s", 30 * SECOND),
        ("2w", 2 * WEEK),
        (" 7d ", 7 * DAY),
    ],
)
def test_durations_read_as_exact_nanoseconds(text: str, ns: int) -> None:
    assert parse_duration(text) == ns


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("60", "duration '60' needs a unit (s, m, h, d, ms), e.g. 60s"),
        ("soon", "bad duration 'soon' (expected e.g. 30s, 5m, 1h30m)"),
        ("5min", "bad duration '5min' (expected e.g. 30s, 5m, 1h30m)"),
        ("367d", "duration '367d' is longer than 366d"),
    ],
)
def test_bad_durations_say_why(text: str, message: str) -> None:
    with pytest.raises(DurationError, match=re.escape(message)):
        parse_duration(text)


def test_the_year_bound_can_be_lifted_for_settings() -> None:
    assert parse_duration("400d", longest=None) == 400 * DAY


def test_every_formatted_duration_reads_back() -> None:
    for ns in (1, 1500, 90 * SECOND, 3 * WEEK + 5, 366 * DAY):
        assert parse_duration(format_duration(ns)) == ns


@pytest.mark.parametrize("text", ["0", "30s", "1h30m", "30 s", "2w", "0.5ms"])
def test_the_json_schema_pattern_accepts_what_the_parser_reads(text: str) -> None:
    assert re.fullmatch(DURATION_PATTERN, text)
