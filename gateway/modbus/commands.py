"""Commands to Modbus devices: writable registers as command settings, written and read back.

A ``modbus:`` device's commands are its writable registers: ``set: {setpoint: 21.5}``
from a rule, or ``outpost command boiler setpoint=21.5``, goes through the same
dispatcher and policy as every other device's (:mod:`gateway.actions.dispatcher`).
:func:`command_specs` turns each writable register into its policy entry — its
range (``min``/``max``, within what its type holds) and, for an integer register
with a scale, its step (a register in tenths takes 21.5, refuses 21.55) — so a
value the register cannot hold is refused before anything reaches the device.

:class:`RegisterWriter` sends a checked command: each setting is written
(function 06 for a one-register value, 16 for two) and read back; the command
is ``acked`` when every register reads back what was written, ``rejected`` when
the device answers an exception or reads back something else (it clamped or
ignored the value). A device that does not answer gives no answer: the
dispatcher's ``ack_timeout`` and retries handle it, as for a device on MQTT.
A write to a device that is offline makes one attempt, without the device's
retries, so that the others on its line are not held up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from devices.conventions import AckOutcome
from devices.modbus.registers import Read, Register
from gateway.config.schema import CommandSpec, DeviceConfig
from gateway.modbus.bus import Unreachable
from gateway.modbus.poller import DevicePoller, exception_text, read_call

log = logging.getLogger("outpost.modbus")

Answer = Callable[[str, AckOutcome, str], None]


def command_specs(registers: tuple[Register, ...]) -> dict[str, CommandSpec]:
    """The policy entry of each writable register, by metric."""
    specs = {}
    for register in registers:
        if not register.writable:
            continue
        low, high = register.bounds()
        whole = register.type.is_integer
        specs[register.metric] = CommandSpec(
            type="int" if whole and register.scale == 1 else "float",
            min=low,
            max=high,
            step=abs(register.scale) if whole and register.scale != 1 else None,
        )
    return specs


def command_device(registers: tuple[Register, ...], listed: DeviceConfig | None) -> DeviceConfig:
    """The device's ``devices:`` entry (pacing, tags) with its writable registers as commands."""
    base = listed or DeviceConfig()
    return base.model_copy(update={"convention": "modbus", "commands": command_specs(registers)})


def _write_call(register: Register, words: list[int], unit: int) -> Callable[..., Any]:
    if len(words) == 1:
        return lambda c: c.write_register(register.address, words[0], device_id=unit)
    return lambda c: c.write_registers(register.address, words, device_id=unit)


class RegisterWriter:
    """The dispatcher's way to one Modbus device (see the module docstring)."""

    def __init__(self, poller: DevicePoller) -> None:
        self.poller = poller
        self.writable = {r.metric: r for r in poller.registers if r.writable}
        self._tasks: set[asyncio.Task[None]] = set()

    def describe(self) -> str:
        return f"modbus {self.poller.describe()}"

    def send(self, command_id: str, settings: Mapping[str, Any], answer: Answer) -> None:
        """Write ``settings`` in the background; ``answer`` is called with the outcome."""
        task = asyncio.get_running_loop().create_task(
            self._write(command_id, dict(settings), answer), name=f"modbus-write-{command_id}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write(self, command_id: str, settings: dict[str, Any], answer: Answer) -> None:
        counters = self.poller.counters
        try:
            for metric, value in settings.items():
                async with self.poller.bus.turn():
                    problem = await self._write_one(self.writable[metric], value)
                if problem:
                    counters["writes_rejected"] += 1
                    answer(command_id, AckOutcome.REJECTED, f"{metric}: {problem}")
                    return
        except Unreachable as exc:
            counters["write_failures"] += 1
            log.warning("modbus %s: writing %s failed: %s", self.poller.device, settings, exc)
            return  # no answer: the dispatcher retries after ack_timeout
        counters["writes_acked"] += 1
        answer(command_id, AckOutcome.ACKED, "")

    async def _write_one(self, register: Register, value: float) -> str:
        """Write one register and read it back; what went wrong, or "" when it holds ``value``."""
        try:
            words = register.words(value)
        except ValueError as exc:
            return str(exc)
        unit = self.poller.unit
        # To a device that stopped answering, one attempt: its line is not held longer.
        offline = self.poller.online is False
        written = await self.poller.request(_write_call(register, words, unit), probe=offline)
        if written.isError():
            return f"write answered {exception_text(written.exception_code)}"
        read = Read(register.table, register.address, register.width, (register,))
        back = await self.poller.request(read_call(read, unit))
        if back.isError():
            return f"read back answered {exception_text(back.exception_code)}"
        if list(back.registers) != words:
            now = read.values(back.registers)[0].number
            return f"wrote {value:g}, the device holds {now if now is None else format(now, 'g')}"
        return ""

