"""The register map of one Modbus device, and how it is read in as few requests as possible.

A :class:`Register` says where a value lives (``table`` ``holding`` — function 03,
written with 06/16 — or ``input`` — function 04, read-only), how it is held
(:class:`~devices.modbus.codec.DataType`, word order), what it means (metric
name, unit, ``scale``: the reading is ``raw × scale``) and the range the value
can have (``min``/``max``, after scaling). The same range serves both ways: a
value read outside it is dropped and counted (a wiring fault or a bad read,
as the serial profiles do), and a command to write outside it is refused.

**Planning reads.** :func:`plan_reads` groups the registers of one table and
one poll interval into :class:`Read` requests: registers that touch (the next
starts where the last ends) share a request, up to ``max_count`` registers
(the protocol allows 125; some devices fewer). Registers with a gap between
them are read apart, because reading across a gap may hit an address the
device refuses (exception 02). A device that refuses a merged request
anyway has it split (:meth:`Read.split`) so one bad address costs only its
own register.

**Decoding.** :meth:`Read.values` turns the words of a response into one
:class:`Value` per register: the scaled number, or the reason it was dropped
(``non_finite``, ``out_of_range``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from devices.modbus.codec import DataType, WordOrder, decode, encode

MAX_READ = 125  # registers in one read request (Modbus Application Protocol 1.1b3, 6.3/6.4)
MAX_ADDRESS = 0xFFFF


class Table(StrEnum):
    HOLDING = "holding"
    INPUT = "input"


@dataclass(frozen=True, slots=True)
class Register:
    """One value in a device's register map (addresses are 0-based protocol addresses)."""

    metric: str
    address: int
    table: Table = Table.HOLDING
    type: DataType = DataType.UINT16
    word_order: WordOrder = "big"
    scale: float = 1.0
    unit: str = ""
    min: float | None = None
    max: float | None = None
    writable: bool = False
    interval: float | None = None  # seconds between reads; None: the device's

    @property
    def width(self) -> int:
        return self.type.width

    @property
    def end(self) -> int:
        """The address after the register's last word."""
        return self.address + self.width

    def bounds(self) -> tuple[float, float]:
        """The values this register may be written with: its range, within what the type holds."""
        low, high = (self.scale * limit for limit in self.type.limits)
        low, high = min(low, high), max(low, high)
        return (
            low if self.min is None else max(low, self.min),
            high if self.max is None else min(high, self.max),
        )

    def value(self, words: Sequence[int]) -> Value:
        """The reading in ``words``, or why there is none."""
        number = float(_scaled(decode(words, self.type, self.word_order), self.scale))
        if not math.isfinite(number):
            return Value(self, None, "non_finite")
        if (self.min is not None and number < self.min) or (
            self.max is not None and number > self.max
        ):
            return Value(self, number, "out_of_range")
        return Value(self, number)

    def words(self, value: float) -> list[int]:
        """The words to write for ``value``; ValueError when the register cannot hold it
        exactly (outside the type, or not a whole number of ``scale`` steps)."""
        raw = _scaled(value, 1 / self.scale)
        if self.type.is_integer:
            rounded = round(raw)
            if abs(raw - rounded) > 1e-9 * max(1.0, abs(raw)):
                raise ValueError(f"{value:g} is not a multiple of {self.scale:g}")
            raw = rounded
        return encode(raw, self.type, self.word_order)


@dataclass(frozen=True, slots=True)
class Value:
    """What one register said in one response: ``number``, or ``dropped`` with a reason."""

    register: Register
    number: float | None
    dropped: str = ""


@dataclass(frozen=True, slots=True)
class Read:
    """One read request: ``count`` registers of ``table`` from ``address``."""

    table: Table
    address: int
    count: int
    registers: tuple[Register, ...] = field(default=())

    def values(self, words: Sequence[int]) -> list[Value]:
        """Each register's value in the words of a response to this request."""
        if len(words) != self.count:
            raise ValueError(f"asked for {self.count} registers, the answer holds {len(words)}")
        out = []
        for register in self.registers:
            start = register.address - self.address
            out.append(register.value(words[start : start + register.width]))
        return out

    def split(self) -> list[Read]:
        """One request per register (after the device refused the merged one)."""
        return [Read(self.table, r.address, r.width, (r,)) for r in self.registers]


def _scaled(number: float, scale: float) -> float:
    """``number × scale``, dividing by a whole divisor where there is one: 403 × 0.1 is
    40.300000000000004 in binary floating point, 403 / 10 is 40.3."""
    if scale == 1:
        return number
    divisor = 1 / scale
    if abs(divisor) >= 1 and abs(divisor - round(divisor)) < 1e-9 * abs(divisor):
        return number / round(divisor)
    return number * scale


def plan_reads(registers: Iterable[Register], max_count: int = MAX_READ) -> list[Read]:
    """The fewest requests that read ``registers`` without crossing a gap, per table."""
    reads: list[Read] = []
    for table in Table:
        current: list[Register] = []
        for register in sorted(
            (r for r in registers if r.table is table), key=lambda r: r.address
        ):
            if current and (
                register.address != current[-1].end
                or register.end - current[0].address > max_count
            ):
                reads.append(_read(table, current))
                current = []
            current.append(register)
        if current:
            reads.append(_read(table, current))
    return reads


def _read(table: Table, registers: list[Register]) -> Read:
    start = registers[0].address
    return Read(table, start, registers[-1].end - start, tuple(registers))


def overlaps(registers: Sequence[Register]) -> list[tuple[Register, Register]]:
    """Pairs of registers of one table that share an address (a typo in a map, usually)."""
    found = []
    ordered = sorted(registers, key=lambda r: (r.table, r.address))
    for before, after in itertools.pairwise(ordered):
        if before.table is after.table and after.address < before.end:
            found.append((before, after))
    return found
