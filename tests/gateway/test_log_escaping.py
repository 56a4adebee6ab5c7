"""Text from outside is escaped in the log, so it can never start a line of its own."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from gateway.logsetup import JournaldFormatter, JsonFormatter, TextFormatter, printable
from gateway.mqtt import wire


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("gh-1", "gh-1"),
        ("Gewächshaus 2 °C", "Gewächshaus 2 °C"),
        ("a\nb", "a\\nb"),
        ("a\r\n2026 ERROR x", "a\\r\\n2026 ERROR x"),
        ("\x1b[2Jclear", "\\x1b[2Jclear"),
        ("nel\x85", "nel\\x85"),
        ("line\u2028sep", "line\\u2028sep"),
        ("rtl\u202eevil", "rtl\\u202eevil"),
        ("lone\ud800", "lone\\ud800"),
    ],
)
def test_printable_escapes_what_is_not_printable(text: str, shown: str) -> None:
    assert printable(text) == shown
    assert printable(printable(text)) == printable(text)  # escaping twice changes nothing


def test_printable_cuts_long_text_and_takes_any_object() -> None:
    assert printable("x" * 300, 10) == "x" * 10 + "…"
    assert printable(ValueError("bad\nthing")) == "bad\\nthing"


def _record_with_exception(message: str) -> logging.LogRecord:
    try:
        raise ValueError(message)
    except ValueError:
        exc_info = sys.exc_info()
    return logging.LogRecord("outpost", logging.ERROR, __file__, 1, "failed", (), exc_info)


@pytest.mark.parametrize("formatter", [TextFormatter(), JournaldFormatter(), JsonFormatter()])
def test_an_exception_message_in_a_traceback_cannot_forge_a_line(formatter) -> None:
    text = formatter.format(_record_with_exception("x\n2026-01-01 00:00:00,000 ERROR forged"))
    if isinstance(formatter, JsonFormatter):
        text = json.loads(text)["exc"]
    assert "Traceback (most recent call last)" in text
    assert not any(line.lstrip("<3>").startswith("2026-01-01") for line in text.splitlines())
    assert "ValueError: x\\n2026-01-01 00:00:00,000 ERROR forged" in text


def test_a_topic_that_is_not_utf8_reaches_the_pipeline_as_surrogates() -> None:
    def topic_of(raw: bytes) -> str:
        publishes: list[tuple[str, bytes, int | None]] = []
        body = len(raw).to_bytes(2, "big") + raw + b"\x00x"  # topic, no properties, payload
        wire.read_packets(bytes((0x30, len(body))) + body, 1 << 16, 1 << 20, publishes, [])
        return publishes[0][0]

    assert topic_of(b"sensors/\xed\xa0\x80/t") == "sensors/\udced\udca0\udc80/t"
    assert topic_of(b"sensors/gh-1/t") == "sensors/gh-1/t"
