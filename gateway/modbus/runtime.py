"""The ``modbus:`` devices of one gateway: their buses, pollers and command writers.

Built from the loaded config before anything connects (a register map that
does not load fails the start), run as one background task::

    modbus = ModbusRuntime(config, deliver=pipeline.put, set_online=devices.set_online)
    metrics.read_at_scrape(modbus.families, modbus.samples)
    dispatcher = CommandDispatcher(modbus.command_devices(config.devices),
                                   direct=modbus.writers, …)
    task = asyncio.create_task(modbus.run(stop))     # polls until ``stop`` is set

Devices that share a link (one RS-485 port, one TCP host:port) share one
:class:`~gateway.modbus.bus.Bus`. Each device's poller is supervised: a bug in
one is logged and it starts again, the others go on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Mapping
from typing import Any

from gateway.config.modbus import registers_of
from gateway.config.schema import Config, DeviceConfig, ModbusDeviceConfig
from gateway.metrics import Sample
from gateway.modbus.bus import bus_for
from gateway.modbus.collector import FAMILIES, modbus_samples
from gateway.modbus.commands import RegisterWriter, command_device
from gateway.modbus.poller import Deliver, DevicePoller, SetOnline

log = logging.getLogger("outpost.modbus")

RESTART_DELAY = 2.0  # seconds before a poller that crashed starts again


class ModbusRuntime:
    families = FAMILIES

    def __init__(self, config: Config, *, deliver: Deliver, set_online: SetOnline) -> None:
        links: dict[str, list[ModbusDeviceConfig]] = {}
        for entry in config.modbus:
            links.setdefault(entry.bus, []).append(entry)
        self.buses = {name: bus_for(entries) for name, entries in links.items()}
        self.pollers: list[DevicePoller] = []
        for entry in config.modbus:
            registers, profile, _problems = registers_of(entry)  # checked at load
            max_read = entry.max_read or (profile.max_read if profile else 125)
            self.pollers.append(DevicePoller(
                entry, registers, max_read, self.buses[entry.bus],
                deliver=deliver, set_online=set_online,
            ))  # fmt: skip
        self.writers = {p.device: RegisterWriter(p) for p in self.pollers if _writable(p)}

    def samples(self) -> Iterator[Sample]:
        return modbus_samples(self.pollers, self.buses.values())

    def command_devices(self, devices: Mapping[str, DeviceConfig]) -> dict[str, DeviceConfig]:
        """``devices:`` with every Modbus device that has writable registers added, its
        writable registers as its commands (its own entry gives pacing and tags)."""
        merged = dict(devices)
        for poller in self.pollers:
            if poller.device in self.writers:
                merged[poller.device] = command_device(poller.registers, devices.get(poller.device))
        return merged

    def links(self) -> dict[str, str]:
        """Each device's link, for the device list: ``tcp 10.0.0.5:502 unit 1``."""
        return {p.device: p.describe() for p in self.pollers}

    async def run(self, stop: asyncio.Event) -> None:
        """Poll every device until ``stop`` is set; then close the links."""
        if not self.pollers:
            await stop.wait()
            return
        log.info("modbus: %s", ", ".join(f"{p.device} ({p.describe()})" for p in self.pollers))
        tasks = [asyncio.create_task(_supervise(p), name=f"modbus-{p.device}")
                 for p in self.pollers]  # fmt: skip
        try:
            await stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for bus in self.buses.values():
                bus.close()


def _writable(poller: DevicePoller) -> bool:
    return any(r.writable for r in poller.registers)


async def _supervise(poller: DevicePoller) -> Any:
    while True:
        try:
            await poller.run()
        except asyncio.CancelledError:
            raise
        except Exception:
            poller.counters["crashes"] += 1
            log.exception("modbus poller %s crashed; restarting", poller.device)
        await asyncio.sleep(RESTART_DELAY)
