"""Serial framings: pure incremental parsers that count what they cannot use and never raise."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.serial.framing import FRAMINGS, CsvFramer, JsonLinesFramer, KvFramer, make_framer


def feed_all(framer, *chunks):
    frames = []
    for chunk in chunks:
        frames.extend(framer.feed(chunk))
    return frames


def test_jsonlines_frames_split_across_reads_are_reassembled():
    framer = JsonLinesFramer()
    frames = feed_all(framer, b'{"t": 21', b'.5, "h": 40}\r\n{"t"', b": 22}\n")
    assert frames == [{"t": 21.5, "h": 40}, {"t": 22}]
    assert framer.counters["frames"] == 2


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"not json\n", "bad_lines"),
        (b"[1, 2]\n", "bad_lines"),
        (b'{"t": NaN}\n', "bad_lines"),
        (b'{"t": 21.5\n', "bad_lines"),
        (b"\xff\xfe\x80garbage\n", "undecodable_lines"),
    ],
)
def test_jsonlines_rejects_are_counted_and_kept_for_the_dead_letter_topic(line, reason):
    framer = JsonLinesFramer()
    assert framer.feed(line + b'{"ok": 1}\n') == [{"ok": 1}]
    assert framer.counters[reason] == 1
    assert framer.counters["garbage_bytes"] == len(line) - 1
    assert framer.rejected[0].reason == reason
    assert framer.rejected[0].line == line[:-1]


def test_an_overlong_line_is_dropped_up_to_its_newline_in_any_number_of_reads():
    framer = JsonLinesFramer(max_line=32)
    frames = feed_all(framer, b'{"a": 1}\n', b"x" * 40, b"y" * 100, b'tail\n{"b": 2}\n')
    assert frames == [{"a": 1}, {"b": 2}]
    assert framer.counters["overlong_lines"] == 1
    assert framer.counters["garbage_bytes"] == 40 + 100 + 5


def test_a_complete_overlong_line_in_one_read_is_dropped():
    framer = JsonLinesFramer(max_line=16)
    assert framer.feed(b'{"aaaaaaaaaaaaaaaaaaaa": 1}\n{"b": 2}\n') == [{"b": 2}]
    assert framer.counters["overlong_lines"] == 1


def test_reset_counts_a_partial_line_and_starts_clean():
    framer = JsonLinesFramer()
    assert framer.feed(b'{"t": 2') == []
    framer.reset()
    assert framer.counters["partial_lines"] == 1
    assert framer.feed(b'{"t": 3}\n') == [{"t": 3}]


def test_kv_lines_with_numbers_bools_and_text():
    framer = KvFramer()
    frames = framer.feed(b"t=21.5, h=40,ok=true,mode=auto\n,,\nt=1,,h=2\nnonsense\n=3\n")
    assert frames == [{"t": 21.5, "h": 40.0, "ok": True, "mode": "auto"}, {"t": 1.0, "h": 2.0}]
    assert framer.counters["bad_lines"] == 3  # ",,", "nonsense", "=3"


def test_kv_accepts_a_json_ack_line():
    assert KvFramer().feed(b'{"ack": "c-1", "ok": true}\n') == [{"ack": "c-1", "ok": True}]
    assert KvFramer().feed(b"ack=c-1,ok=true\n") == [{"ack": "c-1", "ok": True}]


def test_csv_uses_the_first_line_as_header_and_checks_the_column_count():
    framer = CsvFramer()
    frames = framer.feed(b"t,h\n21.5,40\n22,41,9\n23,42\n")
    assert frames == [{"t": 21.5, "h": 40.0}, {"t": 23.0, "h": 42.0}]
    assert framer.counters["bad_lines"] == 1


def test_csv_takes_a_line_without_numbers_as_a_new_header():
    framer = CsvFramer()
    frames = framer.feed(b"t,h\n1,2\ntemp,hum,seq\n3,4,5\n")
    assert frames == [{"t": 1.0, "h": 2.0}, {"temp": 3.0, "hum": 4.0, "seq": 5.0}]
    assert framer.counters["headers"] == 2


def test_csv_refuses_a_header_with_empty_or_duplicate_names():
    framer = CsvFramer()
    assert framer.feed(b"t,,h\nt,t\n1,2\n") == []
    assert framer.counters["bad_lines"] == 2
    assert framer.header == ["1", "2"]  # the first acceptable line; no numbers arrive before it


def test_unknown_framing_lists_the_known_ones():
    with pytest.raises(KeyError, match="jsonlines"):
        make_framer("xml")


@settings(max_examples=300, deadline=None)
@given(
    name=st.sampled_from(sorted(FRAMINGS)),
    chunks=st.lists(st.binary(max_size=200), max_size=20),
    max_line=st.integers(min_value=16, max_value=300),
)
def test_random_bytes_never_raise_and_every_frame_is_a_dict(name, chunks, max_line):
    framer = make_framer(name, max_line=max_line)
    for chunk in chunks:
        for frame in framer.feed(chunk):
            assert isinstance(frame, dict) and frame
    framer.reset()
    assert len(framer._rest) == 0
    assert framer.counters["frames"] <= framer.counters["lines"]


@settings(max_examples=200, deadline=None)
@given(
    good=st.lists(
        st.dictionaries(st.text("abcxyz", min_size=1, max_size=5),
                        st.integers(-1000, 1000), min_size=1, max_size=4),
        max_size=10,
    ),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=10),
)  # fmt: skip
def test_jsonlines_frames_survive_any_read_boundaries(good, cuts):
    import json

    stream = b"".join(json.dumps(frame).encode() + b"\n" for frame in good)
    positions = sorted({c % (len(stream) + 1) for c in cuts})
    chunks = [stream[a:b] for a, b in zip([0, *positions], [*positions, len(stream)], strict=True)]
    assert feed_all(JsonLinesFramer(), *chunks) == good
