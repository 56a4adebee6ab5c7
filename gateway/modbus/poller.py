"""Polling one Modbus device: its reads on schedule, readings out, online/offline, exceptions.

Each poll interval of a device (its ``interval``, or a register's own) is one
task that reads its planned requests (:func:`devices.modbus.registers.plan_reads`)
one after the other through the device's :class:`~gateway.modbus.bus.Bus`, every
``interval`` seconds on a fixed schedule, during one turn on the bus (the
requests of a poll go out back to back). A poll that ends after the next was
due (the bus was busy) is followed at once by the next, from which the
schedule goes on; it is counted (``late_polls``), and missed polls are not
made up in a burst.

**Readings** of one poll share one time: when the device first answered in it.
They go to the pipeline as one batch, like the readings of one MQTT message.
A value outside the register's range, or a float that is not a number, is
dropped and counted (``dropped:<metric>:<reason>``).

**Offline.** A device that does not answer (every retry timed out, no
connection, or a Modbus gateway answering exception 0A/0B: the target did not
respond) is marked offline through the device registry, the same way an LWT
marks an MQTT device, and the rest of that poll is skipped. While it is
offline each poll sends only its first request, once, without retries: a dead
device costs its bus one ``timeout`` per interval, so the other devices on the
line stay on time. The first answer marks it online again.

**Exception responses** (the device answered, but refused) are counted per
register and code (``02`` illegal data address, ``06`` busy, ``04`` device
failure …) and logged once per register and code per minute. A merged request
refused with ``02`` is split into one request per register, for good, so only
the bad address is lost.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from pymodbus.client.base import ModbusBaseClient
from pymodbus.pdu import ModbusPDU

from devices.modbus.registers import Read, Register, Table, plan_reads
from devices.model import Reading
from gateway.config.schema import ModbusDeviceConfig
from gateway.logsetup import Throttled
from gateway.modbus.bus import Bus, Unreachable

log = logging.getLogger("outpost.modbus")

LOG_EVERY = 60.0  # seconds: one line per device and problem, then "(and N more …)"
ILLEGAL_ADDRESS = 0x02
GATEWAY_CODES = {0x0A, 0x0B}  # a TCP-to-RTU gateway: path unavailable, target did not respond
EXCEPTION_NAMES = {
    0x01: "illegal function", 0x02: "illegal data address", 0x03: "illegal data value",
    0x04: "device failure", 0x05: "acknowledge", 0x06: "device busy",
    0x07: "negative acknowledge", 0x08: "memory parity error",
    0x0A: "gateway path unavailable", 0x0B: "gateway target did not respond",
}  # fmt: skip

Deliver = Callable[[list[Reading]], None]
SetOnline = Callable[[str, bool], None]


@dataclass
class Group:
    """The requests read together every ``interval`` seconds."""

    interval: float
    reads: list[Read]


def exception_text(code: int) -> str:
    return f"exception {code:02X} ({EXCEPTION_NAMES.get(code, 'unknown')})"


def read_call(read: Read, unit: int) -> Callable[[ModbusBaseClient], object]:
    """The pymodbus call of one read request."""
    if read.table is Table.INPUT:
        return lambda c: c.read_input_registers(read.address, count=read.count, device_id=unit)
    return lambda c: c.read_holding_registers(read.address, count=read.count, device_id=unit)


class DevicePoller:
    def __init__(
        self,
        entry: ModbusDeviceConfig,
        registers: tuple[Register, ...],
        max_read: int,
        bus: Bus,
        *,
        deliver: Deliver,
        set_online: SetOnline,
        wall: Callable[[], int] = time.time_ns,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.entry = entry
        self.device = entry.device
        self.unit = entry.unit_id
        self.bus = bus
        self.registers = registers
        self.groups = _groups(registers, entry.interval, max_read)
        self.topic = f"modbus/{entry.device}"
        self.counters: Counter[str] = Counter()
        self.exceptions: Counter[tuple[str, str]] = Counter()  # (metric, code) → responses
        self.online: bool | None = None  # None until the first poll
        self.last_answer_ns = 0
        self._deliver = deliver
        self._set_online = set_online
        self._wall = wall
        self._clock = clock
        self._log = Throttled(log, LOG_EVERY, clock)

    def describe(self) -> str:
        return f"{self.bus.name} unit {self.unit}"

    async def request(self, call: Callable[[ModbusBaseClient], object], *, probe: bool = False
                      ) -> ModbusPDU:  # fmt: skip
        """One request to this device through its bus (an exception response included)."""
        return await self.bus.request(
            call,  # type: ignore[arg-type]
            timeout=self.entry.timeout,
            retries=0 if probe else self.entry.retries,
            counters=self.counters,
        )

    # --- schedule ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Poll every group on its schedule until cancelled."""
        async with asyncio.TaskGroup() as tasks:
            for group in self.groups:
                tasks.create_task(self._every(group), name=f"modbus-{self.device}")

    async def _every(self, group: Group) -> None:
        due = self._clock()
        while True:
            async with self.bus.turn():
                await self.poll(group)
            due += group.interval
            now = self._clock()
            if due < now:
                self.counters["late_polls"] += 1
                due = now
            await asyncio.sleep(due - now)

    # --- one poll ---------------------------------------------------------------------------

    async def poll(self, group: Group) -> list[Reading]:
        """Read every request of ``group`` once, during the caller's turn on the bus; the
        readings go to ``deliver`` (and back)."""
        self.counters["polls"] += 1
        readings: list[Reading] = []
        ts = 0
        pending = list(group.reads)
        while pending:
            read = pending.pop(0)
            try:
                call = read_call(read, self.unit)
                response = await self.request(call, probe=self.online is False)
            except Unreachable as exc:
                self._unreachable(exc.reason, str(exc))
                break
            code = response.exception_code if response.isError() else None
            if code in GATEWAY_CODES:
                self._unreachable(f"exception_{code:02X}", exception_text(code))
                break
            self._answered()
            if code == ILLEGAL_ADDRESS and len(read.registers) > 1:
                parts = read.split()
                at = group.reads.index(read)
                group.reads[at : at + 1] = parts
                pending[:0] = parts
                self.counters["split_reads"] += 1
                continue
            if code is not None:
                self._refused(read, code)
                continue
            ts = ts or self._wall()
            readings.extend(self._readings(read, response, ts))
        if readings:
            self.last_answer_ns = ts
            self._deliver(readings)
        return readings

    def _readings(self, read: Read, response: ModbusPDU, ts: int) -> list[Reading]:
        try:
            values = read.values(response.registers)
        except ValueError as exc:  # a device answering with the wrong count
            self.counters["bad_answers"] += 1
            self._log.log(f"bad:{read.address}", logging.WARNING, "modbus %s: %s %d: %s",
                          self.device, read.table, read.address, exc)  # fmt: skip
            return []
        out = []
        for value in values:
            register = value.register
            if value.number is None or value.dropped:
                self.counters[f"dropped:{register.metric}:{value.dropped}"] += 1
                continue
            out.append(Reading(self.device, register.metric, value.number, ts, register.unit,
                               topic=self.topic))  # fmt: skip
        self.counters["readings"] += len(out)
        return out

    # --- what the device said ---------------------------------------------------------------

    def _answered(self) -> None:
        self.counters["answers"] += 1
        if self.online is not True:
            log.info("modbus %s (%s) answers: online", self.device, self.describe())
            self.online = True
            self._set_online(self.device, True)

    def _unreachable(self, reason: str, detail: str) -> None:
        self.counters[f"unreachable:{reason}"] += 1
        if self.online is not False:
            log.warning("modbus %s (%s) does not answer (%s): offline; probed every %gs",
                        self.device, self.describe(), detail, self.entry.interval)  # fmt: skip
            self.online = False
            self._set_online(self.device, False)
        else:
            self._log.log("unreachable", logging.INFO, "modbus %s still does not answer (%s)",
                          self.device, detail)  # fmt: skip

    def _refused(self, read: Read, code: int) -> None:
        label = f"{code:02X}"
        for register in read.registers:
            self.exceptions[(register.metric, label)] += 1
            self._log.log(f"{register.metric}:{label}", logging.WARNING,
                          "modbus %s: %s (%s register %d) answered %s", self.device,
                          register.metric, read.table, register.address, exception_text(code))


def _groups(registers: tuple[Register, ...], interval: float, max_read: int) -> list[Group]:
    by_interval: dict[float, list[Register]] = {}
    for register in registers:
        by_interval.setdefault(register.interval or interval, []).append(register)
    return [Group(i, plan_reads(regs, max_read)) for i, regs in sorted(by_interval.items())]
