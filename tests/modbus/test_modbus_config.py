"""``modbus:`` in outpost.yaml: every mistake fails the start with file:line, before any
connection, including mistakes inside a profile file of the user's own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.config.loader import load_config
from gateway.modbus.commands import command_specs
from gateway.modbus.runtime import ModbusRuntime
from rules.yamlsrc import SourceError

REPO = Path(__file__).resolve().parents[2]


def problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "outpost.yaml"
    path.write_text(text)
    with pytest.raises(SourceError) as caught:
        load_config(str(path))
    return [str(p).removeprefix(f"{path}:") for p in caught.value.problems]


def test_mistakes_in_modbus_entries_point_at_their_line(tmp_path):
    found = problems(tmp_path, """\
modbus:
  - device: meter
    tcp: 10.0.0.5:99999
    profile: sdm120
  - device: meter2
    tcp: 10.0.0.5
    rtu: {port: /dev/ttyUSB0}
  - device: boiler
    rtu: {port: /dev/ttyUSB0, baudrate: 19200}
    unit_id: 0
    registers: {t: {address: 1, table: input}}
  - device: plc
    tcp: plc.lan:502
    registers: {t: {address: 1, table: input, min: 5, max: 1}, u: {address: 2, tabel: input}}
""")
    assert found == [
        "2:5: modbus.0: tcp: '10.0.0.5:99999' is not HOST:PORT, e.g. 192.168.1.50:502",
        "5:5: modbus.1: give either tcp: HOST:PORT or rtu: {port: …}",
        "8:5: modbus.2: unit_id: an RTU device has a unit id from 1 to 247",
        "14:20: modbus.3.registers.t: min 5 is above max 1",
        "14:80: modbus.3.registers.u.tabel: unknown key",
    ]


def test_modbus_entries_are_checked_against_each_other_and_the_rest(tmp_path):
    found = problems(tmp_path, """\
serial:
  - {port: /dev/ttyUSB1, device: arduino}
modbus:
  - device: climate
    rtu: {port: /dev/ttyUSB0}
    profile: xy_md02
    registers:
      fan: {address: 0x0104, writable: true}
  - device: boiler
    rtu: {port: /dev/ttyUSB0, baudrate: 19200}
    registers: {t: {address: 1, table: input}}
  - device: pump
    rtu: {port: /dev/ttyUSB1}
    profile: sdm12
  - device: arduino
    tcp: plc.lan:502
    profile: sdm120
  - device: boiler
    tcp: plc.lan
    profile: sdm120
devices:
  climate: {commands: {fan: {type: int}}}
  meter3: {convention: modbus}
""")
    assert found == [
        "8:7: fan at 260 overlaps humidity_offset (holding 260…260)",
        "10:10: /dev/ttyUSB0: boiler at 19200 8N1, but climate at 9600 8N1; one line, "
        "one setting",
        "13:10: /dev/ttyUSB1 is also the port of a serial: bridge",
        "14:14: unknown Modbus profile 'sdm12'; known: sdm120, xy_md02",
        "15:13: device 'arduino' is also a serial: device",
        "18:13: device 'boiler' is listed twice under modbus:",
        "22:23: climate is a modbus: device: its commands are its writable registers",
        "23:24: convention modbus: meter3 is not listed under modbus:",
    ]


def test_a_profile_file_of_ones_own_is_checked_at_its_own_lines(tmp_path):
    (tmp_path / "meters").mkdir()
    (tmp_path / "meters" / "acme.yaml").write_text(
        "datasheet: ACME EM-1 manual v2\nregisters:\n"
        "  power: {address: 0, table: input, type: float32}\n"
        "  energy: {address: 1, table: input, type: float32, word_order: middle}\n"
    )
    path = tmp_path / "outpost.yaml"
    path.write_text("modbus:\n  - {device: m, tcp: 127.0.0.1, profile: meters/acme.yaml}\n")
    with pytest.raises(SourceError) as caught:
        load_config(str(path))
    assert [str(p) for p in caught.value.problems] == [
        f"{tmp_path}/meters/acme.yaml:4:65: registers.energy.word_order: Input should be "
        "'big' or 'little'"
    ]


def test_outpost_run_refuses_a_bad_map_before_connecting(tmp_path):
    config = tmp_path / "outpost.yaml"
    config.write_text("modbus:\n  - device: m\n    tcp: 127.0.0.1:1502\n"
                      "    registers: {v: {address: 70000, table: input}}\n")  # fmt: skip
    run = subprocess.run([sys.executable, "-m", "gateway", "run", "-c", str(config)],
                         capture_output=True, text=True, timeout=30, cwd=tmp_path,
                         env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})  # fmt: skip
    assert run.returncode == 2
    assert f"{config}:4:30: modbus.0.registers.v.address: Input should be less than or " \
           "equal to 65535" in run.stderr  # fmt: skip


async def test_writable_registers_become_commands_with_their_bounds_and_step(tmp_path):
    config = tmp_path / "outpost.yaml"
    config.write_text("""\
modbus:
  - device: climate
    tcp: 127.0.0.1:1502
    profile: xy_md02
    registers:
      fan: {address: 0x0200, type: uint16, writable: true}
      valve: {address: 0x0201, type: int16, scale: 10, min: -100, writable: true}
devices:
  climate: {min_interval: 2s, tags: {zone: north}}
""")
    loaded = load_config(str(config))
    runtime = ModbusRuntime(loaded.config, deliver=lambda r: None, set_online=lambda d, o: None)
    merged = runtime.command_devices(loaded.config.devices)["climate"]
    assert (merged.convention, merged.min_interval) == ("modbus", 2.0)
    assert merged.tags == {"zone": "north"}
    specs = {k: (v.type, v.min, v.max, v.step) for k, v in merged.commands.items()}
    assert specs == {
        "temperature_offset": ("float", -10.0, 10.0, 0.1),
        "humidity_offset": ("float", -10.0, 10.0, 0.1),
        "fan": ("int", 0, 65535, None),
        "valve": ("float", -100.0, 327670.0, 10.0),
    }
    assert command_specs(runtime.pollers[0].registers) == merged.commands
