"""The Buffer contract, one suite run against MemoryBuffer and DiskOutbox alike.

After Telegraf's models/buffer_suite_test.go: whatever stores the lines, the writer
sees the same append → begin → accept / reject behaviour and the same drop policy.
"""

from __future__ import annotations

import pytest

from gateway.outbox import Buffer
from tests.outbox.conftest import FakeClock, MakeBuffer


def lines(start: int, stop: int) -> list[str]:
    return [f"m,device=d v={i:04d}" for i in range(start, stop)]  # 17 bytes each


def take_all(buf: Buffer) -> list[str]:
    out: list[str] = []
    while (batch := buf.begin(7)) is not None:
        out += batch.lines
        buf.accept(batch)
    return out


def test_buffer_satisfies_the_protocol(make_buffer: MakeBuffer) -> None:
    assert isinstance(make_buffer(), Buffer)


def test_begin_on_an_empty_buffer_returns_none(make_buffer: MakeBuffer) -> None:
    buf = make_buffer()
    assert buf.begin(10) is None
    assert len(buf) == 0 and buf.bytes == 0 and buf.oldest_age(0.0) == 0.0


def test_batches_come_oldest_first_in_append_order(make_buffer: MakeBuffer) -> None:
    buf = make_buffer()
    buf.append(lines(0, 5))
    buf.append(lines(5, 12))
    first = buf.begin(4)
    assert first is not None and first.lines == lines(0, 4)
    buf.accept(first)
    assert take_all(buf) == lines(4, 12)


def test_len_and_bytes_count_every_line_held_including_the_open_batch(
    make_buffer: MakeBuffer,
) -> None:
    buf = make_buffer()
    buf.append(lines(0, 10))
    assert len(buf) == 10 and buf.bytes == 170
    batch = buf.begin(4)
    assert batch is not None and batch.nbytes == 68
    assert len(buf) == 10 and buf.bytes == 170
    buf.accept(batch)
    assert len(buf) == 6 and buf.bytes == 102


def test_accept_forgets_the_batch(make_buffer: MakeBuffer) -> None:
    buf = make_buffer()
    buf.append(lines(0, 3))
    batch = buf.begin(10)
    assert batch is not None
    buf.accept(batch)
    assert len(buf) == 0 and buf.begin(10) is None


def test_reject_puts_the_batch_back_at_the_front(make_buffer: MakeBuffer) -> None:
    buf = make_buffer()
    buf.append(lines(0, 6))
    batch = buf.begin(4)
    assert batch is not None
    buf.append(lines(6, 8))  # arrives while the batch is being written
    buf.reject(batch)
    assert len(buf) == 8
    again = buf.begin(4)
    assert again is not None and again.lines == lines(0, 4)
    buf.accept(again)
    assert take_all(buf) == lines(4, 8)


def test_only_one_batch_is_open_at_a_time(make_buffer: MakeBuffer) -> None:
    buf = make_buffer()
    buf.append(lines(0, 6))
    batch = buf.begin(2)
    assert batch is not None
    with pytest.raises(RuntimeError):
        buf.begin(2)
    buf.accept(batch)
    with pytest.raises(ValueError):
        buf.accept(batch)  # settled twice


def test_non_ascii_lines_weigh_their_utf8_bytes(make_buffer: MakeBuffer) -> None:
    buf = make_buffer()
    buf.append(["temp,room=Küche v=1"])  # 19 characters, 20 bytes
    assert buf.bytes == 20
    batch = buf.begin(1)
    assert batch is not None and batch.lines == ["temp,room=Küche v=1"]


def test_a_full_buffer_drops_the_oldest_lines_and_counts_them(make_buffer: MakeBuffer) -> None:
    buf = make_buffer(max_bytes=170)  # room for 10 lines
    buf.append(lines(0, 8))
    buf.append(lines(8, 15))
    buf.commit()
    assert buf.dropped_full == 5
    assert len(buf) == 10 and buf.bytes == 170
    assert take_all(buf) == lines(5, 15)


def test_the_bound_never_drops_the_open_batch(make_buffer: MakeBuffer) -> None:
    buf = make_buffer(max_bytes=170)
    buf.append(lines(0, 10))
    batch = buf.begin(4)
    assert batch is not None
    buf.append(lines(10, 16))  # 6 over: only lines 4..9 may go
    buf.commit()
    assert buf.dropped_full == 6
    buf.accept(batch)
    assert batch.lines == lines(0, 4)
    assert take_all(buf) == lines(10, 16)


def test_when_only_the_open_batch_is_older_the_newest_lines_are_dropped(
    make_buffer: MakeBuffer,
) -> None:
    buf = make_buffer(max_bytes=170)
    buf.append(lines(0, 10))
    batch = buf.begin(10)
    assert batch is not None
    buf.append(lines(10, 13))  # nothing older is droppable: these go
    buf.commit()
    assert len(buf) == 10 and buf.dropped_full == 3
    buf.reject(batch)
    assert take_all(buf) == lines(0, 10)


def test_lines_older_than_max_age_are_dropped_and_counted(
    make_buffer: MakeBuffer, clock: FakeClock
) -> None:
    buf = make_buffer(max_age=3600.0)
    buf.append(lines(0, 3))
    clock.advance(1800)
    buf.append(lines(3, 5))
    buf.commit()
    assert buf.oldest_age(clock.now) == pytest.approx(1800)
    clock.advance(1801)
    assert buf.expire(clock.now) == 3
    assert buf.dropped_age == 3
    assert buf.oldest_age(clock.now) == pytest.approx(1801)
    assert take_all(buf) == lines(3, 5)


def test_max_age_spares_the_open_batch(make_buffer: MakeBuffer, clock: FakeClock) -> None:
    buf = make_buffer(max_age=60.0)
    buf.append(lines(0, 4))
    batch = buf.begin(2)
    assert batch is not None
    clock.advance(61)
    assert buf.expire(clock.now) == 2
    buf.accept(batch)
    assert len(buf) == 0


def test_the_package_exports_what_it_lists() -> None:
    import gateway.outbox as outbox

    assert sorted(outbox.__all__) == outbox.__all__
    for name in outbox.__all__:
        assert getattr(outbox, name) is not None
