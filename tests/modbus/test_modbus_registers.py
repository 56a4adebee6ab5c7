"""The pure part: register words to readings (types, word orders, scale, signedness),
read planning, and register maps and profiles with their errors at file:line."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from pymodbus.client.mixin import ModbusClientMixin

from devices.modbus import codec
from devices.modbus.codec import DataType
from devices.modbus.profiles import device_registers, load_profile, names, parse_profile
from devices.modbus.registers import Read, Register, Table, plan_reads
from rules.yamlsrc import SourceError

BIG, LITTLE = "big", "little"


@pytest.mark.parametrize(
    ("words", "data_type", "order", "expected"),
    [
        ([0x0131], DataType.INT16, BIG, 305),  # XY-MD02 manual's example: 30.5 °C in tenths
        ([0xFF33], DataType.INT16, BIG, -205),  # and -20.5 °C
        ([0xFF33], DataType.UINT16, BIG, 65331),
        ([0x8000], DataType.INT16, BIG, -32768),
        ([0x0001, 0x0000], DataType.INT32, BIG, 65536),
        ([0x0001, 0x0000], DataType.INT32, LITTLE, 1),
        ([0xFFFF, 0xFFFE], DataType.INT32, BIG, -2),
        ([0xFFFE, 0xFFFF], DataType.INT32, LITTLE, -2),
        ([0xFFFF, 0xFFFE], DataType.UINT32, BIG, 4294967294),
        ([0x4366, 0x6666], DataType.FLOAT32, BIG, 230.4),  # an SDM120 voltage
        ([0x6666, 0x4366], DataType.FLOAT32, LITTLE, 230.4),
        ([0xC2F1, 0x0000], DataType.FLOAT32, BIG, -120.5),
    ],
)
def test_words_decode_by_type_and_word_order(words, data_type, order, expected):
    assert codec.decode(words, data_type, order) == expected
    assert codec.encode(expected, data_type, order) == words


@pytest.mark.parametrize("data_type", list(DataType))
@pytest.mark.parametrize("order", [BIG, LITTLE])
def test_decoding_agrees_with_pymodbus(data_type, order):
    pymodbus_type = getattr(ModbusClientMixin.DATATYPE, data_type.upper())
    for words in ([0x1234, 0xABCD], [0xFFFF, 0x0000], [0x0000, 0x8001], [0x7F80, 0x0001]):
        words = words[: data_type.width]
        ours = codec.decode(words, data_type, order)
        theirs = ModbusClientMixin.convert_from_registers(words, pymodbus_type, word_order=order)
        assert ours == pytest.approx(theirs, rel=1e-6) or (math.isnan(ours) and math.isnan(theirs))


def test_encode_refuses_what_the_type_cannot_hold():
    for value, data_type in [(32768, DataType.INT16), (-1, DataType.UINT16), (1.5, DataType.INT32),
                             (2**32, DataType.UINT32), (math.inf, DataType.FLOAT32),
                             (math.nan, DataType.FLOAT32), (1e39, DataType.FLOAT32)]:
        with pytest.raises(ValueError):
            codec.encode(value, data_type)  # fmt: skip
    with pytest.raises(ValueError, match="takes 2 registers"):
        codec.decode([1], DataType.FLOAT32)
    with pytest.raises(ValueError, match="0…65535"):
        codec.decode([70000], DataType.UINT16)


def test_scale_gives_the_reading_and_refuses_values_between_steps():
    tenths = Register("temperature", 1, Table.INPUT, DataType.INT16, scale=0.1)
    assert tenths.value([403]).number == 40.3  # 403 × 0.1 would be 40.300000000000004
    assert tenths.value([0xFF33]).number == -20.5
    assert tenths.words(21.5) == [215]
    assert tenths.words(-1.5) == [0xFFF1]
    with pytest.raises(ValueError, match=r"not a multiple of 0\.1"):
        tenths.words(21.55)
    kilo = Register("energy", 0, type=DataType.UINT32, scale=1000)
    assert kilo.value([0, 3]).number == 3000 and kilo.words(5000) == [0, 5]
    assert kilo.bounds() == (0, 1000 * (2**32 - 1))


def test_values_outside_the_range_are_dropped_with_a_reason():
    humidity = Register("humidity", 2, Table.INPUT, DataType.UINT16, scale=0.1, min=0, max=100)
    assert humidity.value([1005]).dropped == "out_of_range"
    assert humidity.value([1000]).dropped == ""
    nan = Register("x", 0, type=DataType.FLOAT32)
    assert nan.value([0x7FC0, 0x0000]).dropped == "non_finite"


def test_touching_registers_share_a_request_gaps_and_tables_do_not():
    regs = [Register("a", 0, Table.INPUT, DataType.FLOAT32), Register("b", 2, Table.INPUT),
            Register("c", 3, Table.INPUT, DataType.INT32), Register("d", 6, Table.INPUT),
            Register("e", 3, Table.HOLDING)]  # fmt: skip
    reads = plan_reads(regs)
    assert [(r.table, r.address, r.count) for r in reads] == [
        (Table.HOLDING, 3, 1), (Table.INPUT, 0, 5), (Table.INPUT, 6, 1)
    ]  # fmt: skip
    assert [(r.address, r.count) for r in plan_reads(regs[:3], max_count=3)] == [(0, 3), (3, 2)]
    merged = reads[1]
    assert [v.number for v in merged.values([0x4366, 0x6666, 7, 0, 9])] == [230.4, 7, 9]
    assert [(r.address, r.count) for r in merged.split()] == [(0, 2), (2, 1), (3, 2)]
    with pytest.raises(ValueError, match="asked for 5 registers"):
        merged.values([1, 2])


def test_shipped_profiles_load_and_cite_their_data_sheet():
    assert names() == ["sdm120", "xy_md02"]
    xy, sdm = load_profile("xy_md02"), load_profile("sdm120")
    assert "XY-MD02" in xy.datasheet and "SDM120" in sdm.datasheet
    temperature = {r.metric: r for r in xy.registers}["temperature"]
    assert (temperature.address, temperature.table, temperature.scale) == (1, Table.INPUT, 0.1)
    assert {r.metric for r in xy.registers if r.writable} == {"temperature_offset",
                                                               "humidity_offset"}
    voltage = {r.metric: r for r in sdm.registers}["voltage"]
    assert (voltage.type, voltage.word_order, voltage.unit) == (DataType.FLOAT32, "big", "V")
    assert [r.metric for r in sdm.registers if r.writable] == ["pulse_width"]


def test_a_bad_profile_reports_every_problem_at_its_line(tmp_path: Path):
    text = (
        "datasheet: ACME meter manual v1\n"
        "registers:\n"
        "  voltage: {address: 0, table: input, type: float32}\n"
        "  current: {address: 1, table: input}\n"            # overlaps voltage's 2nd word
        "  setpoint: {address: 5, table: input, writable: true}\n"
        "  power: {address: 8, type: float64}\n"
        "  bad: {adress: 3}\n"
    )
    with pytest.raises(SourceError) as caught:
        parse_profile(text, "acme.yaml", "acme")
    lines = str(caught.value).splitlines()
    assert lines[0].startswith("acme.yaml:5:")
    assert "only holding registers can be writable" in lines[0]
    assert lines[1].startswith("acme.yaml:6:") and "registers.power.type" in lines[1]
    assert any(line.startswith("acme.yaml:7:") and "unknown key" in line for line in lines)
    good = text.split("  setpoint")[0]
    with pytest.raises(SourceError, match=r"acme.yaml:4:3: current at 1 overlaps voltage"):
        parse_profile(good, "acme.yaml", "acme")
    path = tmp_path / "empty.yaml"
    path.write_text("datasheet: x\nregisters: {}\n")
    with pytest.raises(SourceError, match=r"empty\.yaml:2:"):
        load_profile(str(path))
    with pytest.raises(KeyError, match="unknown Modbus profile 'sdm12'"):
        load_profile("sdm12")


def test_config_registers_add_to_and_replace_the_profiles():
    xy = load_profile("xy_md02")
    mine = Register("temperature", 1, Table.INPUT, DataType.INT16, scale=0.01)
    extra = Register("dew_point", 9, Table.INPUT)
    registers, problems = device_registers(xy, {"temperature": mine, "dew_point": extra})
    by_metric = {r.metric: r for r in registers}
    assert by_metric["temperature"].scale == 0.01 and "dew_point" in by_metric and not problems
    _, problems = device_registers(None, {})
    assert problems == [("", "no registers: give profile: or registers:")]


def test_a_read_keeps_its_registers_in_address_order():
    read = Read(Table.INPUT, 1, 2, (Register("t", 1, Table.INPUT), Register("h", 2, Table.INPUT)))
    assert [v.register.metric for v in read.values([1, 2])] == ["t", "h"]
