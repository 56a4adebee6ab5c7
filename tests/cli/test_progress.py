"""Long CLI work shows how far it is on a terminal (count, rate, elapsed time), and always
ends with one line that says what it did."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

from tests.cli.helpers import MODULE, in_pty, lines, outpost
from tests.gateway.harness import Device, write_config

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "examples" / "greenhouse" / "rules.yaml"
T0 = 1_795_755_600 * 10**9


def _recording(path: Path, readings: int) -> Path:
    """``readings`` temperatures of four sensors, one a second, as ``outpost record`` writes."""
    with path.open("w") as out:
        for i in range(readings):
            out.write(
                f'{{"ts": {T0 + i * 10**9}, "device": "gh-{i % 4}", "metric": "temperature", '
                f'"value": {20 + (i % 200) / 10}, "tags": {{}}}}\n'
            )
    return path


def _screen(shown: str) -> list[str]:
    """The lines a terminal showed, each redraw (after a carriage return) on its own."""
    return [part.replace("\x1b[K", "") for part in re.split(r"[\r\n]+", shown) if part.strip()]


def test_replay_on_a_terminal_shows_count_rate_and_time(tmp_path) -> None:
    recording = _recording(tmp_path / "day.jsonl", 300_000)
    code, shown, out = in_pty(
        [*MODULE, "rules", "replay", "--rules", str(RULES), "--input", str(recording), "--json"],
        cwd=tmp_path,
        timeout=120,
    )
    assert code == 0, shown
    screen = _screen(shown)
    live = [line for line in screen if line.startswith("replaying ")]
    assert live, screen
    for line in live:
        assert re.fullmatch(
            r"replaying [\d,]+/300,000 readings \(\d+%\), [\d,.]+/s, [\d.]+ s", line
        ), line
    events = len(lines(out))
    assert re.fullmatch(
        rf"replayed 300,000 readings, {events:,} alert events in [\d.]+ s \([\d,.]+/s\)",
        screen[-1],
    ), screen[-1]


def test_replay_without_a_terminal_ends_with_one_line_and_draws_nothing(tmp_path) -> None:
    recording = _recording(tmp_path / "hour.jsonl", 3600)
    result = outpost(
        "rules", "replay", "--rules", str(RULES), "--input", str(recording), cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "\r" not in result.stderr and "\x1b" not in result.stderr
    [line] = lines(result.stderr)
    assert re.fullmatch(
        r"replayed 3,600 readings, \d+ alert events in [\d.]+ s \([\d,.]+/s\)", line
    ), line


def test_record_on_a_terminal_shows_what_it_has_recorded(tmp_path, mosquitto) -> None:
    config = write_config(
        tmp_path / "outpost.yaml", {"mqtt": {"host": "127.0.0.1", "port": mosquitto.port}}
    )
    stop = threading.Event()

    def publish() -> None:
        with Device(mosquitto.port) as sensor:
            deadline = time.monotonic() + 20
            while not stop.is_set() and time.monotonic() < deadline:
                sensor.publish("sensors/gh-1/temperature", "21.5", qos=0)
                time.sleep(0.05)

    publisher = threading.Thread(target=publish)
    publisher.start()
    try:
        code, shown, _ = in_pty(
            [*MODULE, "record", "-c", str(config), "--output", str(tmp_path / "out.jsonl"),
             "--duration", "4s"],
            cwd=tmp_path,
        )  # fmt: skip
    finally:
        stop.set()
        publisher.join()
    assert code == 0, shown
    screen = _screen(shown)
    live = [line for line in screen if line.startswith("recording ")]
    assert live, screen
    for line in live:
        assert re.fullmatch(
            r"recording [\d,]+ readings \(0 messages skipped\), [\d,.]+/s, [\d.]+ s", line
        ), line
    recorded = len(lines((tmp_path / "out.jsonl").read_text()))
    assert recorded > 0
    assert re.fullmatch(
        rf"recorded {recorded:,} readings \(0 messages skipped\) in [\d.]+ s \([\d,.]+/s\)",
        screen[-1],
    ), screen[-1]
