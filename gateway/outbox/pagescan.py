"""Reading outbox rows straight from the pages of a damaged SQLite file.

The salvage in ``recovery.py`` walks the table through SQLite, which can only reach a
leaf page through the interior pages above it. In a table of more than a few thousand
rows those interior pages are written late, so they often sit in the part of a file
that a power cut truncated: the walk then finds nothing, although half of the leaf
pages, each holding whole rows, are still on disk. This module reads them the way the
``sqlite3`` shell's ``.recover`` does, by the file format
(https://www.sqlite.org/fileformat2.html): every page that looks like a table leaf
(type 13) is parsed cell by cell, in the main file and in the frames of its ``-wal``.

A cell is kept only if it is a whole outbox row: five columns shaped as ``store.COLUMNS``
(the id is the rowid), size and crc32 matching the line (``store.intact``). Cells
whose payload spills onto overflow pages (lines longer than a page) are skipped: the
salvage counts them as lost. Stale copies of pages (freed pages, older WAL frames) can
yield rows that were already accepted; the caller decides which ids it wants.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

from gateway.outbox import store

_LEAF = 0x0D
_WAL_HEADER = 32
_FRAME_HEADER = 24


def scan_rows(path: Path) -> Iterator[store.Row]:
    """Every intact outbox row found on table leaf pages of ``path`` and its ``-wal``."""
    try:
        data = path.read_bytes()
    except OSError:
        return
    page_size = _page_size(data)
    if page_size is None:
        return
    usable = page_size - data[20]
    for start in range(0, len(data) - page_size + 1, page_size):
        yield from _leaf_rows(data, start, 100 if start == 0 else 0, page_size, usable)
    wal = path.with_name(path.name + "-wal")
    try:
        frames = wal.read_bytes()
    except OSError:
        return
    step = _FRAME_HEADER + page_size
    for start in range(_WAL_HEADER, len(frames) - step + 1, step):
        pgno = int.from_bytes(frames[start:start + 4], "big")
        yield from _leaf_rows(frames, start + _FRAME_HEADER, 100 if pgno == 1 else 0,
                              page_size, usable)


def _page_size(data: bytes) -> int | None:
    if len(data) < 100 or not data.startswith(b"SQLite format 3\x00"):
        return None
    size = int.from_bytes(data[16:18], "big")
    size = 65536 if size == 1 else size
    if size < 512 or size & (size - 1) or data[20] >= size - 480:
        return None
    return size


def _leaf_rows(buf: bytes, page: int, header_at: int, page_size: int,
               usable: int) -> Iterator[store.Row]:
    hdr = page + header_at
    if buf[hdr] != _LEAF:
        return
    cells = int.from_bytes(buf[hdr + 3:hdr + 5], "big")
    end = page + usable
    for i in range(min(cells, page_size // 4)):
        at = hdr + 8 + 2 * i
        offset = int.from_bytes(buf[at:at + 2], "big")
        if offset < header_at + 8 or offset >= usable:
            continue
        try:
            row = _cell(buf, page + offset, end, usable)
        except (IndexError, ValueError, struct.error, UnicodeDecodeError):
            continue
        if row is not None and store.intact(row):
            yield row


def _cell(buf: bytes, at: int, end: int, usable: int) -> store.Row | None:
    length, at = _varint(buf, at)
    rowid, at = _varint(buf, at)
    if length > usable - 35 or at + length > end:
        return None  # spills onto overflow pages (or runs off the page): not whole here
    record = buf[at:at + length]
    header_len, pos = _varint(record, 0)
    types = []
    while pos < header_len:
        serial, pos = _varint(record, pos)
        types.append(serial)
    if len(types) != len(store.COLUMNS) or types[0] != 0:  # id: the rowid, stored as NULL
        return None
    values: list[object] = []
    pos = header_len
    for serial in types[1:]:
        value, pos = _value(record, pos, serial)
        values.append(value)
    ts, size, crc, line = values
    if isinstance(ts, int):
        ts = float(ts)  # SQLite may store an integral REAL as an integer
    return (rowid, ts, size, crc, line)  # type: ignore[return-value]


_INT_SIZES = {1: 1, 2: 2, 3: 3, 4: 4, 5: 6, 6: 8}


def _value(record: bytes, pos: int, serial: int) -> tuple[object, int]:
    if serial in _INT_SIZES:
        n = _INT_SIZES[serial]
        return int.from_bytes(record[pos:pos + n], "big", signed=True), pos + n
    if serial == 7:
        return struct.unpack(">d", record[pos:pos + 8])[0], pos + 8
    if serial in (8, 9):
        return serial - 8, pos
    if serial >= 13 and serial % 2:
        n = (serial - 13) // 2
        if pos + n > len(record):
            raise ValueError("text runs past the record")
        return record[pos:pos + n].decode("utf-8"), pos + n
    raise ValueError(f"serial type {serial} is not an outbox column")


def _varint(buf: bytes, at: int) -> tuple[int, int]:
    value = 0
    for i in range(8):
        byte = buf[at + i]
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value, at + i + 1
    return (value << 8) | buf[at + 8], at + 9
