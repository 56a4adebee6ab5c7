"""Register words ⇄ numbers: the five data types and the two word orders.

A Modbus register is one 16-bit word, sent high byte first (the protocol fixes
that). A 32-bit value spans two registers, and devices disagree on which comes
first: ``big`` word order puts the high word at the lower address (Eastron
meters, most PLCs), ``little`` the low word (many Schneider and Siemens
devices call it "word swap"). Bytes inside a word are never swapped.

:func:`decode` turns words into an ``int`` (``int16``, ``uint16``, ``int32``,
``uint32``) or a ``float`` (``float32``, IEEE 754 single precision);
:func:`encode` does the reverse and refuses what the type cannot hold.
Both are pure and total over their inputs: any sequence of ``width`` words
in 0…65535 decodes (a float32 may decode to NaN or infinity: the caller
decides), anything else raises :class:`ValueError`.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from enum import StrEnum
from typing import Literal

WordOrder = Literal["big", "little"]
WORD_ORDERS: tuple[WordOrder, ...] = ("big", "little")


class DataType(StrEnum):
    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    FLOAT32 = "float32"

    @property
    def width(self) -> int:
        """Registers (16-bit words) one value takes."""
        return 1 if self in (DataType.INT16, DataType.UINT16) else 2

    @property
    def is_integer(self) -> bool:
        return self is not DataType.FLOAT32

    @property
    def limits(self) -> tuple[float, float]:
        """The smallest and largest raw value the type holds."""
        return _LIMITS[self]


_STRUCT = {
    DataType.INT16: ">h",
    DataType.UINT16: ">H",
    DataType.INT32: ">i",
    DataType.UINT32: ">I",
    DataType.FLOAT32: ">f",
}
_FLOAT32_MAX = struct.unpack(">f", b"\x7f\x7f\xff\xff")[0]
_LIMITS = {
    DataType.INT16: (-(2**15), 2**15 - 1),
    DataType.UINT16: (0, 2**16 - 1),
    DataType.INT32: (-(2**31), 2**31 - 1),
    DataType.UINT32: (0, 2**32 - 1),
    DataType.FLOAT32: (-_FLOAT32_MAX, _FLOAT32_MAX),
}


def _ordered(words: Sequence[int], word_order: WordOrder) -> Sequence[int]:
    if word_order == "big":
        return words
    if word_order == "little":
        return list(reversed(words))
    raise ValueError(f"word order {word_order!r}: use big or little")


def decode(words: Sequence[int], data_type: DataType, word_order: WordOrder = "big") -> float:
    """The raw value ``words`` hold (an int for the integer types, as a float for float32)."""
    if len(words) != data_type.width:
        raise ValueError(f"{data_type} takes {data_type.width} registers, got {len(words)}")
    for word in words:
        if not isinstance(word, int) or isinstance(word, bool) or not 0 <= word <= 0xFFFF:
            raise ValueError(f"a register holds 0…65535, got {word!r}")
    data = b"".join(w.to_bytes(2, "big") for w in _ordered(words, word_order))
    value: float = struct.unpack(_STRUCT[data_type], data)[0]
    return _shortest_float32(value, data) if data_type is DataType.FLOAT32 else value


def _shortest_float32(value: float, data: bytes) -> float:
    """The shortest decimal that is the same float32: a meter's 230.4 V is held as
    230.39999389648438, and 230.4 is what it meant (and what a reading should say)."""
    if not math.isfinite(value):
        return value
    for digits in range(6, 10):
        short = float(f"{value:.{digits}g}")
        if struct.pack(">f", short) == data:
            return short
    return value


def encode(value: float, data_type: DataType, word_order: WordOrder = "big") -> list[int]:
    """The words that hold ``value``; ValueError when the type cannot hold it exactly.

    An integer type takes only whole numbers within its limits; float32 takes any
    finite number within its range (rounded to single precision, as the device
    will store it).
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{value!r} is not a finite number")
    low, high = data_type.limits
    if not low <= value <= high:
        raise ValueError(f"{value:g} does not fit in {data_type} ({low:g}…{high:g})")
    if data_type.is_integer:
        if value != int(value):
            raise ValueError(f"{value:g} is not a whole number ({data_type})")
        data = struct.pack(_STRUCT[data_type], int(value))
    else:
        data = struct.pack(_STRUCT[data_type], float(value))
    words = [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
    return list(_ordered(words, word_order))
