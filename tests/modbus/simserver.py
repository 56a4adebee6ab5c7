"""A Modbus device simulator for the tests: pymodbus's own server, serving profiles' maps.

Run as its own process (``python -m tests.modbus.simserver``), on TCP or on one end of
a pty pair (RTU)::

    --tcp 127.0.0.1:5020 | --rtu /tmp/x/ttyA [--baudrate 9600]
    --unit 1=xy_md02 --unit 2=sdm120      a unit id serving a profile's register map
    --values '{"1": {"temperature": 21.5}}'   register values (scaled, as a reading would be)
    --silent 7          a unit that never answers (a dead device on the line)
    --busy 1:50         answer exception 06 (busy) to reads at this unit:address
    --gateway-dead 9    answer exception 0B (gateway: target did not respond)
    --clamp 2:0x000C:100    store at most 100 when a float32 at unit:address is written
                            (a device that limits a setting without saying so)

Registers are encoded with pymodbus's ``convert_to_registers``, not with the
gateway's codec, so a test that reads them back checks the gateway's decoding
against an implementation of its own. Addresses outside the map answer exception
02, as a real device does. Prints ``serving`` once listening.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from pymodbus.client.mixin import ModbusClientMixin
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from devices.modbus.profiles import load_profile
from devices.modbus.registers import Register, Table

_TYPES = ModbusClientMixin.DATATYPE


def words(register: Register, value: float) -> list[int]:
    raw = value / register.scale
    data_type = getattr(_TYPES, register.type.upper())
    number: float = round(raw) if register.type.is_integer else raw
    return ModbusClientMixin.convert_to_registers(
        number, data_type, word_order=register.word_order
    )


def default_value(register: Register) -> float:
    if register.min is not None and register.max is not None:
        return (register.min + register.max) / 2
    return register.min if register.min is not None else 1.0


def blocks(registers: tuple[Register, ...], values: dict[str, float], table: Table
           ) -> list[SimData]:  # fmt: skip
    out = []
    for register in registers:
        if register.table is table:
            value = values.get(register.metric, default_value(register))
            out.append(SimData(register.address, values=words(register, value),
                               datatype=DataType.REGISTERS))  # fmt: skip
    # pymodbus wants at least one block per table.
    return out or [SimData(0xFFF0, values=[0], datatype=DataType.REGISTERS)]


def device(unit: int, profile: str, values: dict[str, float], busy: set[tuple[int, int]],
           dead: set[int], clamp: dict[tuple[int, int], float]) -> SimDevice:  # fmt: skip
    registers = load_profile(profile).registers
    bits = [SimData(0, values=[False] * 16, datatype=DataType.BITS)]

    async def action(function: int, _start: int, address: int, count: int,
                     _registers: list[int], _set: Any) -> ExcCodes | None:  # fmt: skip
        if unit in dead:
            return ExcCodes.GATEWAY_NO_RESPONSE
        if function in (3, 4) and any((unit, a) in busy for a in range(address, address + count)):
            return ExcCodes.DEVICE_BUSY
        limit = clamp.get((unit, address))
        if function == 16 and limit is not None and _set:
            float32 = _TYPES.FLOAT32
            if ModbusClientMixin.convert_from_registers(list(_set[:2]), float32) > limit:
                _set[:2] = ModbusClientMixin.convert_to_registers(limit, float32)
        return None

    return SimDevice(
        id=unit,
        simdata=(bits, bits, blocks(registers, values, Table.HOLDING),
                 blocks(registers, values, Table.INPUT)),
        action=action,
    )  # fmt: skip


def silencer(silent: set[int], rtu: bool) -> Any:
    """A server trace hook that drops every answer from a silent unit."""

    def trace(sending: bool, packet: bytes) -> bytes:
        if sending and packet:
            unit = packet[0] if rtu else packet[6] if len(packet) > 6 else -1
            if unit in silent:
                return b""
        return packet

    return trace


async def serve(args: argparse.Namespace) -> None:
    values = {int(k): v for k, v in json.loads(args.values).items()}
    busy = {(int(u), int(a, 0)) for u, a in (b.split(":") for b in args.busy)}
    dead = set(args.gateway_dead)
    silent = set(args.silent)
    clamp = {(int(u), int(a, 0)): float(m) for u, a, m in (c.split(":") for c in args.clamp)}
    units = [tuple(u.split("=")) for u in args.unit]
    devices = [device(int(u), p, values.get(int(u), {}), busy, dead, clamp) for u, p in units]
    devices += [device(u, units[0][1], {}, busy, dead, clamp) for u in silent]
    server: ModbusTcpServer | ModbusSerialServer
    if args.tcp:
        host, port = args.tcp.rsplit(":", 1)
        server = ModbusTcpServer(devices, address=(host, int(port)),
                                 trace_packet=silencer(silent, rtu=False))  # fmt: skip
    else:
        server = ModbusSerialServer(devices, port=args.rtu, baudrate=args.baudrate,
                                    trace_packet=silencer(silent, rtu=True))  # fmt: skip
    task = asyncio.create_task(server.serve_forever())
    await asyncio.sleep(0.2)
    print("serving", flush=True)
    await task


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="simserver")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--tcp")
    where.add_argument("--rtu")
    parser.add_argument("--baudrate", type=int, default=9600)
    parser.add_argument("--unit", action="append", default=[], required=True)
    parser.add_argument("--values", default="{}")
    parser.add_argument("--silent", action="append", type=int, default=[])
    parser.add_argument("--busy", action="append", default=[])
    parser.add_argument("--gateway-dead", action="append", type=int, default=[])
    parser.add_argument("--clamp", action="append", default=[])
    args = parser.parse_args(argv)
    try:
        asyncio.run(serve(args))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
