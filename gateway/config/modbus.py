"""The checks of ``modbus:`` that span more than one key, and each device's register map.

Run by the config loader after validation, so a bad ``modbus:`` entry fails the
start with ``file:line:col: message`` before anything connects:

- device ids are valid and unique, and not also a ``serial:`` device;
- the profile exists and loads (its own problems point into the profile file);
- the map (profile + ``registers:``) has registers, no two sharing an address;
- devices on one RS-485 port agree on its line settings, and no ``serial:``
  bridge holds that port;
- a ``devices:`` entry of a Modbus device (for tags or command pacing) has no
  ``commands:`` (its writable registers are its commands) and no other
  ``convention:``; ``convention: modbus`` names a ``modbus:`` device.
"""

from __future__ import annotations

from pathlib import Path

from devices.modbus.profiles import Profile, device_registers, load_profile
from devices.modbus.registers import Register
from devices.model import InvalidReading, check_device_id
from gateway.config.schema import Config, ModbusDeviceConfig
from rules.yamlsrc import LocDict, Mark, Problem, SourceError, locate, locate_key

CONVENTION = "modbus"


def registers_of(
    entry: ModbusDeviceConfig, base_dir: Path | None = None
) -> tuple[tuple[Register, ...], Profile | None, list[tuple[str, str]]]:
    """The device's register map, its profile, and the map's problems as (metric, message).

    Raises KeyError for an unknown shipped profile and SourceError for a profile file
    that does not load.
    """
    profile = load_profile(entry.profile, base_dir) if entry.profile else None
    own = {m: r.register(m, r.interval) for m, r in entry.registers.items()}
    registers, problems = device_registers(profile, own)
    return registers, profile, problems


def check_modbus(config: Config, data: LocDict, origin: Mark, base_dir: Path) -> list[Problem]:
    problems: list[Problem] = []
    serial_ports = {s.port for s in config.serial}
    serial_devices = {s.device for s in config.serial}
    seen: dict[str, int] = {}
    lines: dict[str, tuple[str, str]] = {}  # port → (line settings, first device)
    for i, entry in enumerate(config.modbus):
        at = ("modbus", i)
        try:
            check_device_id(entry.device)
        except InvalidReading as exc:
            problems.append(Problem(locate(data, (*at, "device"), origin), str(exc)))
        if entry.device in seen:
            problems.append(Problem(locate(data, (*at, "device"), origin),
                                    f"device {entry.device!r} is listed twice under modbus:"))
        elif entry.device in serial_devices:
            problems.append(Problem(locate(data, (*at, "device"), origin),
                                    f"device {entry.device!r} is also a serial: device"))
        seen.setdefault(entry.device, i)
        problems.extend(_map_problems(entry, data, at, origin, base_dir))
        if entry.rtu is not None:
            port, line = entry.rtu.port, entry.rtu.line()
            where = locate(data, (*at, "rtu"), origin)
            if port in serial_ports:
                problems.append(Problem(where, f"{port} is also the port of a serial: bridge"))
            first = lines.setdefault(port, (line, entry.device))
            if first[0] != line:
                problems.append(Problem(where, f"{port}: {entry.device} at {line}, but "
                                        f"{first[1]} at {first[0]}; one line, one setting"))
    problems.extend(_devices_entries(config, data, origin, set(seen)))
    return problems  # fmt: skip


def _map_problems(
    entry: ModbusDeviceConfig, data: LocDict, at: tuple[str | int, ...], origin: Mark,
    base_dir: Path,
) -> list[Problem]:  # fmt: skip
    try:
        _registers, _profile, found = registers_of(entry, base_dir)
    except KeyError as exc:
        return [Problem(locate(data, (*at, "profile"), origin), str(exc.args[0]))]
    except SourceError as exc:
        return list(exc.problems)
    problems = []
    for metric, message in found:
        if metric in entry.registers:
            where = locate_key(data, (*at, "registers", metric), origin)
        else:
            where = locate(data, (*at, "profile" if entry.profile else "device"), origin)
        problems.append(Problem(where, message))
    return problems


def _devices_entries(
    config: Config, data: LocDict, origin: Mark, modbus: set[str]
) -> list[Problem]:
    problems = []
    for name, device in config.devices.items():
        at = ("devices", name)
        explicit = "convention" in device.model_fields_set
        if name in modbus:
            if explicit and device.convention != CONVENTION:
                problems.append(Problem(locate(data, (*at, "convention"), origin),
                                        f"{name} is a modbus: device; its convention is modbus"))
            if device.commands:
                problems.append(Problem(locate(data, (*at, "commands"), origin),
                                        f"{name} is a modbus: device: its commands are its "
                                        "writable registers"))
        elif device.convention == CONVENTION:
            problems.append(Problem(locate(data, (*at, "convention"), origin),
                                    f"convention modbus: {name} is not listed under modbus:"))
    return problems  # fmt: skip
