"""The written form of a register and of a profile file, validated with pydantic.

One model, :class:`RegisterSpec`, describes a register wherever one is written:
in a profile file (:mod:`devices.modbus.profiles`) and under a device's
``registers:`` in ``outpost.yaml`` (the gateway's config schema extends it with
a poll ``interval``). Its checks that span several keys (a register that ends
past address 65535, ``writable`` on an input register, ``min`` above ``max``)
live here once.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from devices.modbus.codec import DataType
from devices.modbus.registers import MAX_ADDRESS, MAX_READ, Register, Table


class RegisterSpec(BaseModel):
    """One register of a device's map; its key (the metric name) is given by the mapping."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    address: int = Field(
        ge=0,
        le=MAX_ADDRESS,
        description="0-based protocol address, as sent on the wire (a data sheet's register "
        "30001 or 40001 is address 0); hex allowed: 0x0101",
    )
    table: Literal["holding", "input"] = Field(
        "holding", description="holding (function 03; writable with 06/16) or input (04)"
    )
    type: Literal["int16", "uint16", "int32", "uint32", "float32"] = Field(
        "uint16", description="how the value is held: 16-bit types take one register, "
        "32-bit types two"
    )
    word_order: Literal["big", "little"] = Field(
        "big", description="32-bit types: big = high word at the lower address; little = low word"
    )
    scale: float = Field(1.0, description="the reading is the raw value times scale (0.1: tenths)")
    unit: str = Field("", description="unit of the scaled value (°C, %, V, kWh …)")
    min: float | None = Field(
        None, description="lowest plausible value: below it a reading is dropped and counted, "
        "and a command is refused"
    )
    max: float | None = Field(None, description="highest plausible value (as min)")
    writable: bool = Field(
        False, description="holding registers only: may be set by a command (set: {metric: v})"
    )

    @model_validator(mode="after")
    def _consistent(self) -> RegisterSpec:
        width = DataType(self.type).width
        if self.address + width - 1 > MAX_ADDRESS:
            raise ValueError(f"a {self.type} at {self.address} ends past address {MAX_ADDRESS}")
        if not math.isfinite(self.scale) or self.scale == 0:
            raise ValueError("scale must be a finite number other than 0")
        for name in ("min", "max"):
            bound = getattr(self, name)
            if bound is not None and not math.isfinite(bound):
                raise ValueError(f"{name} must be a finite number")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min:g} is above max {self.max:g}")
        if self.writable and self.table != "holding":
            raise ValueError("only holding registers can be writable")
        return self

    def register(self, metric: str, interval: float | None = None) -> Register:
        return Register(
            metric=metric,
            address=self.address,
            table=Table(self.table),
            type=DataType(self.type),
            word_order=self.word_order,
            scale=self.scale,
            unit=self.unit,
            min=self.min,
            max=self.max,
            writable=self.writable,
            interval=interval,
        )


class ProfileSpec(BaseModel):
    """A profile file: the register map of one device model, from its data sheet."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str = Field("", description="what the device is")
    datasheet: str = Field(
        description="the document the register map comes from: name and version"
    )
    max_read: int = Field(
        MAX_READ, ge=1, le=MAX_READ, description="most registers the device answers in one read"
    )
    registers: dict[str, RegisterSpec] = Field(min_length=1)
