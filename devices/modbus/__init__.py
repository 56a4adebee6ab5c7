"""Modbus devices as data: register maps, their decoding, and profiles (pure; no I/O).

| module | what |
|---|---|
| ``codec.py`` | register words ⇄ numbers: int16/uint16/int32/uint32/float32, word order |
| ``registers.py`` | :class:`Register`, reads planned in as few requests as possible, decoding |
| ``spec.py`` | the written form of a register and of a profile file (pydantic) |
| ``profiles.py`` | profile files (``profiles/*.yaml``), loading with ``file:line`` errors |

The polling, the clients and the bus locks are the gateway's (:mod:`gateway.modbus`).
"""

from devices.modbus.codec import DataType
from devices.modbus.profiles import Profile, device_registers, load_profile
from devices.modbus.registers import Read, Register, Table, Value, plan_reads

__all__ = [
    "DataType",
    "Profile",
    "Read",
    "Register",
    "Table",
    "Value",
    "device_registers",
    "load_profile",
    "plan_reads",
]
