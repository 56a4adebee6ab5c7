"""Fuzzing the Modbus register decoder and the profile loader.

The decoder's contract (``devices/modbus/codec.py``, ``registers.py``): any words a
device can send (16-bit values, the count a request asked for) decode to a number
of the register's type, or to a reading dropped with a reason (``non_finite``,
``out_of_range``) — never an exception, and never a number that did not come from
those words (a decoded value encodes back to the same words). The profile loader
either loads a text or raises its ``SourceError`` of ``file:line:col`` problems.

A few dozen examples each by default; ``OUTPOST_FUZZ_EXAMPLES=N`` runs N.
"""

from __future__ import annotations

import math
import os

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devices.modbus import codec
from devices.modbus.codec import DataType
from devices.modbus.profiles import parse_profile
from devices.modbus.registers import Register, Table, plan_reads
from rules.yamlsrc import SourceError

EXAMPLES = int(os.environ.get("OUTPOST_FUZZ_EXAMPLES", "60"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
WORD = st.integers(0, 0xFFFF)
TYPES = st.sampled_from(list(DataType))
ORDERS = st.sampled_from(codec.WORD_ORDERS)
SCALES = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6).filter(
    lambda s: abs(s) > 1e-9
)
BOUNDS = st.none() | st.floats(allow_nan=False, allow_infinity=False, width=32)


@FUZZ
@given(data_type=TYPES, order=ORDERS, data=st.data())
def test_any_words_decode_and_encode_back(data_type, order, data):
    words = data.draw(st.lists(WORD, min_size=data_type.width, max_size=data_type.width))
    value = codec.decode(words, data_type, order)
    if data_type.is_integer:
        low, high = data_type.limits
        assert isinstance(value, int) and low <= value <= high
    elif not math.isfinite(value):
        return  # NaN and infinities: the register drops them as non_finite
    assert codec.encode(value, data_type, order) == words


@FUZZ
@given(data_type=TYPES, order=ORDERS, scale=SCALES, low=BOUNDS, high=BOUNDS, data=st.data())
def test_a_register_never_raises_on_what_a_device_sends(data_type, order, scale, low, high, data):
    register = Register("m", 0, Table.INPUT, data_type, order, scale, min=low, max=high)
    words = data.draw(st.lists(WORD, min_size=data_type.width, max_size=data_type.width))
    value = register.value(words)
    if value.dropped == "non_finite":
        assert value.number is None
        return
    assert value.number is not None and math.isfinite(value.number)
    outside = (low is not None and value.number < low) or (high is not None and value.number > high)
    assert (value.dropped == "out_of_range") == outside


@FUZZ
@given(
    layout=st.lists(st.tuples(st.integers(0, 200), TYPES, st.sampled_from(list(Table))),
                    min_size=1, max_size=12),
    max_count=st.integers(2, 125),
    data=st.data(),
)  # fmt: skip
def test_planned_reads_decode_every_register_once(layout, max_count, data):
    registers, taken = [], set()
    for i, (address, data_type, table) in enumerate(layout):
        cells = {(table, a) for a in range(address, address + data_type.width)}
        if not cells & taken:
            taken |= cells
            registers.append(Register(f"r{i}", address, table, data_type))
    reads = plan_reads(registers, max_count)
    decoded = []
    for read in reads:
        assert read.count <= max_count
        words = data.draw(st.lists(WORD, min_size=read.count, max_size=read.count))
        decoded += [v.register.metric for v in read.values(words)]
        assert sorted(v.register.metric for part in read.split()
                      for v in part.values([0] * part.count)) == sorted(
            r.metric for r in read.registers)  # fmt: skip
    assert sorted(decoded) == sorted(r.metric for r in registers)


REGISTER_KEYS = ["address", "table", "type", "word_order", "scale", "unit", "min", "max",
                 "writable", "adress"]  # fmt: skip
SCALARS = st.none() | st.booleans() | st.integers(-70000, 70000) | st.floats() | st.text(max_size=8)


@FUZZ
@given(
    registers=st.dictionaries(
        st.text(max_size=6), st.dictionaries(st.sampled_from(REGISTER_KEYS), SCALARS, max_size=6)
        | SCALARS, max_size=5,
    ),
    top=st.dictionaries(st.sampled_from(["datasheet", "max_read", "description", "x"]), SCALARS),
)  # fmt: skip
def test_the_profile_loader_loads_or_says_where(registers, top):
    text = yaml.safe_dump({**top, "registers": registers}, allow_unicode=True)
    try:
        profile = parse_profile(text, "p.yaml", "p")
    except SourceError as exc:
        assert exc.problems and all(p.mark.file == "p.yaml" and p.mark.line >= 1
                                    for p in exc.problems)  # fmt: skip
        return
    assert profile.registers and profile.datasheet
